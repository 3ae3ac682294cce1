/*
 * Inserts users DRV_FROM..DRV_TO (inclusive) into the distributed table `users` through the proxy
 * with pgjdbc, one autocommitted PreparedStatement execution per row (each row is a single-group
 * statement), then reads one back by key. Connection parameters come from the environment
 * (DRV_HOST, DRV_PORT, DRV_DATABASE, DRV_USER, DRV_PASSWORD); DRV_PROPS holds extra connection
 * properties as k=v;k=v (prepareThreshold=-1, preferQueryMode=simple). Prints "ok <n>" and exits 0,
 * or prints the stack trace to stderr and exits 1.
 */
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.util.Properties;

public final class ShardInserts {
  private static String env(String name) {
    String v = System.getenv(name);
    if (v == null) throw new IllegalStateException("environment variable " + name + " is not set");
    return v;
  }

  public static void main(String[] args) {
    String url = "jdbc:postgresql://" + env("DRV_HOST") + ":" + env("DRV_PORT") + "/" + env("DRV_DATABASE");
    Properties p = new Properties();
    p.setProperty("user", env("DRV_USER"));
    p.setProperty("password", env("DRV_PASSWORD"));
    p.setProperty("ApplicationName", "pgscale-shard-drivers");
    p.setProperty("connectTimeout", "10");
    String props = System.getenv("DRV_PROPS");
    if (props != null && !props.isEmpty()) {
      for (String kv : props.split(";")) {
        String[] parts = kv.split("=", 2);
        p.setProperty(parts[0], parts[1]);
      }
    }
    long from = Long.parseLong(env("DRV_FROM"));
    long to = Long.parseLong(env("DRV_TO"));
    try (Connection c = DriverManager.getConnection(url, p)) {
      c.setAutoCommit(true);
      try (PreparedStatement ps =
          c.prepareStatement("INSERT INTO users (user_id, name, email) VALUES (?, ?, ?)")) {
        for (long k = from; k <= to; k++) {
          ps.setLong(1, k);
          ps.setString(2, "user " + k);
          ps.setString(3, "u" + k + "@example.com");
          if (ps.executeUpdate() != 1) throw new AssertionError("insert of " + k + " did not say 1 row");
        }
      }
      try (PreparedStatement ps = c.prepareStatement("SELECT name FROM users WHERE user_id = ?")) {
        ps.setLong(1, to);
        try (ResultSet rs = ps.executeQuery()) {
          if (!rs.next() || !rs.getString(1).equals("user " + to)) throw new AssertionError("read back " + to);
        }
      }
      System.out.println("ok " + (to - from + 1));
    } catch (Throwable t) {
      t.printStackTrace();
      System.exit(1);
    }
  }
}
