/*
 * Copies users DRV_FROM..DRV_TO (inclusive) into the distributed table `users` through the proxy
 * with pgjdbc's CopyManager (COPY … FROM STDIN, CSV), in one COPY, and checks the count pgjdbc
 * reports. Connection parameters come from the environment (DRV_HOST, DRV_PORT, DRV_DATABASE,
 * DRV_USER, DRV_PASSWORD). Prints "ok <n>" and exits 0, or prints the stack trace and exits 1.
 */
import java.io.StringReader;
import java.sql.Connection;
import java.sql.DriverManager;
import java.util.Properties;
import org.postgresql.PGConnection;
import org.postgresql.copy.CopyManager;

public final class ShardCopy {
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
    p.setProperty("ApplicationName", "pgscale-shard-copy");
    p.setProperty("connectTimeout", "10");
    long from = Long.parseLong(env("DRV_FROM"));
    long to = Long.parseLong(env("DRV_TO"));
    StringBuilder data = new StringBuilder();
    for (long k = from; k <= to; k++) {
      data.append(k).append(",\"user ").append(k).append(", jdbc\",u").append(k).append("@example.com\n");
    }
    try (Connection c = DriverManager.getConnection(url, p)) {
      CopyManager copy = c.unwrap(PGConnection.class).getCopyAPI();
      long n = copy.copyIn(
          "COPY users (user_id, name, email) FROM STDIN (FORMAT csv)", new StringReader(data.toString()));
      if (n != to - from + 1) throw new AssertionError("COPY said " + n + " rows");
      System.out.println("ok " + n);
    } catch (Throwable t) {
      t.printStackTrace();
      System.exit(1);
    }
  }
}
