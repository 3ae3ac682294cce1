/*
 * Transactions on two groups through the proxy with pgjdbc (autocommit off, prepared statements
 * reused past prepareThreshold, so they become server-prepared): DRV_N transfers of 1 from
 * account DRV_A to account DRV_B, each committed; a savepoint rolled back to after a write on
 * both; a failing statement that rolls the whole transaction back. Connection parameters come
 * from the environment (DRV_HOST, DRV_PORT, DRV_DATABASE, DRV_USER, DRV_PASSWORD). Prints
 * "ok <balance a> <balance b>" and exits 0, or prints the stack trace and exits 1.
 */
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Savepoint;
import java.util.Properties;

public final class ShardTx {
  private static String env(String name) {
    String v = System.getenv(name);
    if (v == null) throw new IllegalStateException("environment variable " + name + " is not set");
    return v;
  }

  private static long balance(Connection c, long id) throws SQLException {
    try (PreparedStatement s = c.prepareStatement("SELECT balance FROM accounts WHERE id = ?")) {
      s.setLong(1, id);
      try (ResultSet r = s.executeQuery()) {
        r.next();
        return r.getLong(1);
      }
    }
  }

  public static void main(String[] args) {
    String url = "jdbc:postgresql://" + env("DRV_HOST") + ":" + env("DRV_PORT") + "/" + env("DRV_DATABASE");
    Properties p = new Properties();
    p.setProperty("user", env("DRV_USER"));
    p.setProperty("password", env("DRV_PASSWORD"));
    p.setProperty("ApplicationName", "pgscale-shard-tx");
    p.setProperty("connectTimeout", "10");
    long a = Long.parseLong(env("DRV_A"));
    long b = Long.parseLong(env("DRV_B"));
    int n = Integer.parseInt(env("DRV_N"));
    try (Connection c = DriverManager.getConnection(url, p)) {
      c.setAutoCommit(false);
      try (PreparedStatement move = c.prepareStatement("UPDATE accounts SET balance = balance + ? WHERE id = ?")) {
        for (int i = 0; i < n; i++) {
          move.setLong(1, -1);
          move.setLong(2, a);
          move.executeUpdate();
          move.setLong(1, 1);
          move.setLong(2, b);
          move.executeUpdate();
          c.commit();
        }
        // A savepoint, then writes on both groups rolled back to it.
        move.setLong(1, 1000);
        move.setLong(2, a);
        move.executeUpdate();
        Savepoint sp = c.setSavepoint("before_b");
        move.setLong(1, 1000);
        move.setLong(2, b);
        move.executeUpdate();
        move.setLong(1, 1000);
        move.setLong(2, a);
        move.executeUpdate();
        c.rollback(sp);
        move.setLong(1, -1000);
        move.setLong(2, a);
        move.executeUpdate();
        c.commit();
        // A failing statement: the transaction rolls back on both groups.
        move.setLong(1, 5);
        move.setLong(2, b);
        move.executeUpdate();
        try {
          move.setLong(1, -1_000_000);
          move.setLong(2, a);
          move.executeUpdate();
          throw new AssertionError("a negative balance was accepted");
        } catch (SQLException e) {
          if (!"23514".equals(e.getSQLState())) throw e;
        }
        c.rollback();
      }
      long ba = balance(c, a);
      long bb = balance(c, b);
      c.commit();
      System.out.println("ok " + ba + " " + bb);
    } catch (Throwable t) {
      t.printStackTrace();
      System.exit(1);
    }
  }
}
