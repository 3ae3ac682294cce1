/*
 * pgjdbc driver scenarios for pgscale's conformance suite. Connection parameters come from the
 * environment (DRV_HOST, DRV_PORT, DRV_DATABASE, DRV_USER, DRV_PASSWORD); DRV_TABLE names a table
 * prefix no one else uses. prepareThreshold=1 makes pgjdbc use named server-side statements from
 * the first execution, the case transaction poolers must get right. Prints "ok <step>" per step;
 * on failure prints the step and the stack trace to stderr and exits 1.
 */
import java.math.BigDecimal;
import java.sql.Array;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.util.Arrays;
import java.util.Properties;
import java.util.UUID;

public final class PgjdbcScenarios {
  private static final String PREFIX = env("DRV_TABLE");

  private static String env(String name) {
    String v = System.getenv(name);
    if (v == null) throw new IllegalStateException("environment variable " + name + " is not set");
    return v;
  }

  private static void check(boolean cond, String what) {
    if (!cond) throw new AssertionError(what);
  }

  private static Connection connect() throws SQLException {
    String url = "jdbc:postgresql://" + env("DRV_HOST") + ":" + env("DRV_PORT") + "/" + env("DRV_DATABASE");
    Properties p = new Properties();
    p.setProperty("user", env("DRV_USER"));
    p.setProperty("password", env("DRV_PASSWORD"));
    p.setProperty("prepareThreshold", "1");
    p.setProperty("ApplicationName", "pgscale-drivers");
    p.setProperty("connectTimeout", "10");
    return DriverManager.getConnection(url, p);
  }

  interface Step {
    void run(Connection c) throws Exception;
  }

  public static void main(String[] args) {
    String[] names = {"preparedAcrossTransactions", "batchInsert", "typesRoundTrip", "statementTimeout", "fetchSize"};
    Step[] steps = {
      PgjdbcScenarios::preparedAcrossTransactions,
      PgjdbcScenarios::batchInsert,
      PgjdbcScenarios::typesRoundTrip,
      PgjdbcScenarios::statementTimeout,
      PgjdbcScenarios::fetchSize,
    };
    try (Connection c = connect()) {
      for (int i = 0; i < steps.length; i++) {
        try {
          steps[i].run(c);
        } catch (Throwable e) {
          System.err.println("pgjdbc scenario failed in " + names[i] + ": " + e);
          e.printStackTrace();
          System.exit(1);
        }
        System.out.println("ok " + names[i]);
      }
    } catch (SQLException e) {
      System.err.println("pgjdbc: cannot connect or close: " + e);
      e.printStackTrace();
      System.exit(1);
    }
  }

  private static void exec(Connection c, String sql) throws SQLException {
    try (Statement s = c.createStatement()) {
      s.execute(sql);
    }
  }

  /** One PreparedStatement, executed 50 times in 10 committed transactions. */
  static void preparedAcrossTransactions(Connection c) throws Exception {
    String table = PREFIX + "_prep";
    c.setAutoCommit(true);
    exec(c, "CREATE TABLE " + table + " (id int PRIMARY KEY, tx int, v text)");
    c.setAutoCommit(false);
    try (PreparedStatement ins = c.prepareStatement("INSERT INTO " + table + " VALUES (?, ?, ?)");
        PreparedStatement count = c.prepareStatement("SELECT count(*) FROM " + table + " WHERE tx <= ?")) {
      int id = 0;
      for (int tx = 0; tx < 10; tx++) {
        for (int k = 0; k < 5; k++) {
          ins.setInt(1, id++);
          ins.setInt(2, tx);
          ins.setString(3, "tx " + tx + " ☃");
          check(ins.executeUpdate() == 1, "insert count");
        }
        count.setInt(1, tx);
        try (ResultSet rs = count.executeQuery()) {
          check(rs.next() && rs.getInt(1) == (tx + 1) * 5, "rows visible in the transaction");
        }
        c.commit();
      }
      check(ins.unwrap(org.postgresql.PGStatement.class).isUseServerPrepare(), "server-side prepare in use");
    }
    // A rolled-back transaction leaves nothing behind, and the statements still work.
    try (PreparedStatement ins = c.prepareStatement("INSERT INTO " + table + " VALUES (?, ?, ?)")) {
      ins.setInt(1, 1000);
      ins.setInt(2, 99);
      ins.setString(3, "rolled back");
      ins.executeUpdate();
      c.rollback();
    }
    try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT count(*), count(DISTINCT tx) FROM " + table)) {
      check(rs.next() && rs.getInt(1) == 50 && rs.getInt(2) == 10, "50 rows in 10 transactions");
    }
    exec(c, "DROP TABLE " + table);
    c.commit();
  }

  static void batchInsert(Connection c) throws Exception {
    String table = PREFIX + "_batch";
    c.setAutoCommit(false);
    exec(c, "CREATE TABLE " + table + " (id int PRIMARY KEY, v text, n numeric)");
    try (PreparedStatement ps = c.prepareStatement("INSERT INTO " + table + " VALUES (?, ?, ?)")) {
      for (int i = 1; i <= 10_000; i++) {
        ps.setInt(1, i);
        ps.setString(2, "row " + i);
        ps.setBigDecimal(3, new BigDecimal(i + ".25"));
        ps.addBatch();
        if (i % 2500 == 0) {
          int[] counts = ps.executeBatch();
          check(counts.length == 2500, "batch result length " + counts.length);
          for (int n : counts) check(n == 1 || n == Statement.SUCCESS_NO_INFO, "batch row count " + n);
        }
      }
    }
    c.commit();
    try (Statement s = c.createStatement();
        ResultSet rs = s.executeQuery("SELECT count(*), sum(id), sum(n) FROM " + table)) {
      check(rs.next(), "batch count row");
      check(rs.getInt(1) == 10_000, "batch rows " + rs.getInt(1));
      check(rs.getLong(2) == 50_005_000L, "batch sum " + rs.getLong(2));
      check(rs.getBigDecimal(3).compareTo(new BigDecimal("50007500.00")) == 0, "batch numeric sum " + rs.getBigDecimal(3));
    }
    exec(c, "DROP TABLE " + table);
    c.commit();
  }

  static void typesRoundTrip(Connection c) throws Exception {
    c.setAutoCommit(true);
    BigDecimal big = new BigDecimal("-123456789012345678901234567890.123456789012345678901234567890");
    OffsetDateTime ts = OffsetDateTime.of(2024, 2, 29, 23, 59, 58, 123_456_000, ZoneOffset.ofHoursMinutes(5, 30));
    byte[] bytes = {0, 1, 2, 127, (byte) 128, (byte) 254, (byte) 255, 0x5c, 0x27};
    UUID uuid = UUID.fromString("6ba7b810-9dad-11d1-80b4-00c04fd430c8");
    String text = "ünï©ødé ☃ 𝄞 tab\there 'quote' back\\slash\r\nend";
    Array ints = c.createArrayOf("int4", new Integer[] {1, null, -3});
    Array texts = c.createArrayOf("text", new String[] {"a", "b,c", "\"q\"", null, "", "NULL", "ü☃"});
    try (PreparedStatement ps = c.prepareStatement(
        "SELECT ?::numeric, ?::timestamptz, ?::bytea, ?::uuid, ?::text, ?::int4[], ?::text[], ?::int8, ?::bool, ?::text,"
            + " ?::numeric = '-123456789012345678901234567890.123456789012345678901234567890',"
            + " ?::timestamptz = '2024-02-29 18:29:58.123456+00', ?::bytea = '\\x0001027f80feff5c27'::bytea")) {
      for (int round = 0; round < 3; round++) {
        ps.setBigDecimal(1, big);
        ps.setObject(2, ts);
        ps.setBytes(3, bytes);
        ps.setObject(4, uuid);
        ps.setString(5, text);
        ps.setArray(6, ints);
        ps.setArray(7, texts);
        ps.setLong(8, Long.MIN_VALUE);
        ps.setBoolean(9, true);
        ps.setNull(10, java.sql.Types.VARCHAR);
        ps.setBigDecimal(11, big);
        ps.setObject(12, ts);
        ps.setBytes(13, bytes);
        try (ResultSet rs = ps.executeQuery()) {
          check(rs.next(), "a row");
          check(rs.getBigDecimal(1).equals(big), "numeric " + rs.getBigDecimal(1));
          check(rs.getObject(2, OffsetDateTime.class).isEqual(ts), "timestamptz " + rs.getObject(2, OffsetDateTime.class));
          check(Arrays.equals(rs.getBytes(3), bytes), "bytea " + Arrays.toString(rs.getBytes(3)));
          check(uuid.equals(rs.getObject(4)), "uuid " + rs.getObject(4));
          check(text.equals(rs.getString(5)), "text " + rs.getString(5));
          check(Arrays.equals((Integer[]) rs.getArray(6).getArray(), new Integer[] {1, null, -3}), "int4[]");
          check(
              Arrays.equals(
                  (String[]) rs.getArray(7).getArray(), new String[] {"a", "b,c", "\"q\"", null, "", "NULL", "ü☃"}),
              "text[] " + Arrays.toString((String[]) rs.getArray(7).getArray()));
          check(rs.getLong(8) == Long.MIN_VALUE, "int8 " + rs.getLong(8));
          check(rs.getBoolean(9), "bool");
          check(rs.getString(10) == null && rs.wasNull(), "null");
          check(rs.getBoolean(11) && rs.getBoolean(12) && rs.getBoolean(13), "server-side equality of sent values");
        }
      }
    }
  }

  static void statementTimeout(Connection c) throws Exception {
    c.setAutoCommit(true);
    exec(c, "SET statement_timeout = '300ms'");
    try (PreparedStatement ps = c.prepareStatement("SELECT pg_sleep(?)")) {
      ps.setDouble(1, 3.0);
      long t0 = System.nanoTime();
      try {
        ps.executeQuery().close();
        throw new AssertionError("statement_timeout did not fire");
      } catch (SQLException e) {
        check("57014".equals(e.getSQLState()), "SQLState " + e.getSQLState() + ": " + e.getMessage());
      }
      check((System.nanoTime() - t0) / 1_000_000 < 2500, "timeout fired early enough");
    }
    exec(c, "RESET statement_timeout");
    // The same timeout inside a transaction: the transaction fails, rolls back, the connection goes on.
    c.setAutoCommit(false);
    exec(c, "SET LOCAL statement_timeout = '200ms'");
    try {
      exec(c, "SELECT pg_sleep(2)");
      throw new AssertionError("SET LOCAL statement_timeout did not fire");
    } catch (SQLException e) {
      check("57014".equals(e.getSQLState()), "SQLState " + e.getSQLState());
    }
    c.rollback();
    try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT pg_sleep(0.4), current_setting('statement_timeout')")) {
      check(rs.next() && "0".equals(rs.getString(2)), "SET LOCAL ended with the transaction");
    }
    c.commit();
  }

  /** setFetchSize inside a transaction: pgjdbc fetches through a portal, 1000 rows per Execute. */
  static void fetchSize(Connection c) throws Exception {
    c.setAutoCommit(false);
    final int rows = 100_000;
    try (PreparedStatement ps = c.prepareStatement("SELECT g, md5(g::text) FROM generate_series(1, ?) g")) {
      ps.setFetchSize(1000);
      ps.setInt(1, rows);
      long sum = 0;
      int n = 0;
      try (ResultSet rs = ps.executeQuery()) {
        while (rs.next()) {
          sum += rs.getInt(1);
          check(rs.getString(2).length() == 32, "md5 column");
          n++;
        }
      }
      check(n == rows, "rows " + n);
      check(sum == (long) rows * (rows + 1) / 2, "sum " + sum);
    }
    // Interleave: two open portals in the same transaction, read alternately.
    try (PreparedStatement a = c.prepareStatement("SELECT g FROM generate_series(1, 5000) g");
        PreparedStatement b = c.prepareStatement("SELECT -g FROM generate_series(1, 5000) g")) {
      a.setFetchSize(100);
      b.setFetchSize(100);
      try (ResultSet ra = a.executeQuery(); ResultSet rb = b.executeQuery()) {
        int i = 0;
        while (ra.next()) {
          check(rb.next(), "second portal ended early");
          i++;
          check(ra.getInt(1) == i && rb.getInt(1) == -i, "interleaved portals at " + i);
        }
        check(i == 5000 && !rb.next(), "interleaved portals complete");
      }
    }
    c.commit();
  }
}
