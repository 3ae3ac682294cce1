/**
 * TPC-H's eight tables at a tiny scale, generated deterministically from a seed (dbgen is not
 * available here). The column domains follow the TPC-H specification (v3, clause 4.2.3) closely
 * enough that the 22 queries, with the substitution parameters in tpch.sql, return rows: the
 * fixed nations and regions, part names from the 92 colour words, types, containers, brands,
 * market segments, priorities, ship modes and instructions, phone numbers whose country code is
 * the nation key + 10, dates from 1992-01-01 to 1998-12-31 with ship/commit/receipt dates and
 * return flags derived as dbgen derives them, prices from the part key's formula, and customers
 * with no orders (every third one, as in TPC-H). Keys are dense (dbgen's order keys are sparse;
 * nothing in the queries depends on it). Rows are COPY text format.
 */

/** A small, fast, seeded PRNG (mulberry32): the same rows on every run and every host. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface TpchSizes {
  customers: number;
  orders: number;
  parts: number;
  suppliers: number;
}

/** About 1/100 of scale factor 1 for the small tables, ~40,000 lineitem rows. */
export const TPCH_SIZES: TpchSizes = { customers: 1500, orders: 10000, parts: 2000, suppliers: 100 };

export const TPCH_SCHEMA = `
CREATE TABLE region (r_regionkey int PRIMARY KEY, r_name char(25) NOT NULL, r_comment varchar(152));
CREATE TABLE nation (n_nationkey int PRIMARY KEY, n_name char(25) NOT NULL, n_regionkey int NOT NULL, n_comment varchar(152));
CREATE TABLE supplier (s_suppkey int PRIMARY KEY, s_name char(25) NOT NULL, s_address varchar(40) NOT NULL,
  s_nationkey int NOT NULL, s_phone char(15) NOT NULL, s_acctbal numeric(15,2) NOT NULL, s_comment varchar(101) NOT NULL);
CREATE TABLE customer (c_custkey int PRIMARY KEY, c_name varchar(25) NOT NULL, c_address varchar(40) NOT NULL,
  c_nationkey int NOT NULL, c_phone char(15) NOT NULL, c_acctbal numeric(15,2) NOT NULL, c_mktsegment char(10) NOT NULL,
  c_comment varchar(117) NOT NULL);
CREATE TABLE part (p_partkey int PRIMARY KEY, p_name varchar(55) NOT NULL, p_mfgr char(25) NOT NULL, p_brand char(10) NOT NULL,
  p_type varchar(25) NOT NULL, p_size int NOT NULL, p_container char(10) NOT NULL, p_retailprice numeric(15,2) NOT NULL,
  p_comment varchar(23) NOT NULL);
CREATE TABLE partsupp (ps_partkey int NOT NULL, ps_suppkey int NOT NULL, ps_availqty int NOT NULL,
  ps_supplycost numeric(15,2) NOT NULL, ps_comment varchar(199) NOT NULL, PRIMARY KEY (ps_partkey, ps_suppkey));
CREATE TABLE orders (o_orderkey int PRIMARY KEY, o_custkey int NOT NULL, o_orderstatus char(1) NOT NULL,
  o_totalprice numeric(15,2) NOT NULL, o_orderdate date NOT NULL, o_orderpriority char(15) NOT NULL, o_clerk char(15) NOT NULL,
  o_shippriority int NOT NULL, o_comment varchar(79) NOT NULL);
CREATE TABLE lineitem (l_orderkey int NOT NULL, l_partkey int NOT NULL, l_suppkey int NOT NULL, l_linenumber int NOT NULL,
  l_quantity numeric(15,2) NOT NULL, l_extendedprice numeric(15,2) NOT NULL, l_discount numeric(15,2) NOT NULL,
  l_tax numeric(15,2) NOT NULL, l_returnflag char(1) NOT NULL, l_linestatus char(1) NOT NULL, l_shipdate date NOT NULL,
  l_commitdate date NOT NULL, l_receiptdate date NOT NULL, l_shipinstruct char(25) NOT NULL, l_shipmode char(10) NOT NULL,
  l_comment varchar(44) NOT NULL, PRIMARY KEY (l_orderkey, l_linenumber));
`;

/** Citus's API calls that shard the TPC-H tables, as Citus users do. */
export const TPCH_DISTRIBUTION = [
  "SELECT create_reference_table('region')",
  "SELECT create_reference_table('nation')",
  "SELECT create_reference_table('supplier')",
  "SELECT create_distributed_table('orders', 'o_orderkey')",
  "SELECT create_distributed_table('lineitem', 'l_orderkey', colocate_with => 'orders')",
  "SELECT create_distributed_table('customer', 'c_custkey', colocate_with => 'none')",
  "SELECT create_distributed_table('part', 'p_partkey', colocate_with => 'none')",
  "SELECT create_distributed_table('partsupp', 'ps_partkey', colocate_with => 'part')",
];

const REGIONS = ['AFRICA', 'AMERICA', 'ASIA', 'EUROPE', 'MIDDLE EAST'];
const NATIONS: [string, number][] = [
  ['ALGERIA', 0],
  ['ARGENTINA', 1],
  ['BRAZIL', 1],
  ['CANADA', 1],
  ['EGYPT', 4],
  ['ETHIOPIA', 0],
  ['FRANCE', 3],
  ['GERMANY', 3],
  ['INDIA', 2],
  ['INDONESIA', 2],
  ['IRAN', 4],
  ['IRAQ', 4],
  ['JAPAN', 2],
  ['JORDAN', 4],
  ['KENYA', 0],
  ['MOROCCO', 0],
  ['MOZAMBIQUE', 0],
  ['PERU', 1],
  ['CHINA', 2],
  ['ROMANIA', 3],
  ['SAUDI ARABIA', 4],
  ['VIETNAM', 2],
  ['RUSSIA', 3],
  ['UNITED KINGDOM', 3],
  ['UNITED STATES', 1],
];
const COLOURS = (
  'almond antique aquamarine azure beige bisque black blanched blue blush brown burlywood burnished ' +
  'chartreuse chiffon chocolate coral cornflower cornsilk cream cyan dark deep dim dodger drab firebrick ' +
  'floral forest frosted gainsboro ghost goldenrod green grey honeydew hot indian ivory khaki lace ' +
  'lavender lawn lemon light lime linen magenta maroon medium metallic midnight mint misty moccasin navajo ' +
  'navy olive orange orchid pale papaya peach peru pink plum powder puff purple red rose rosy royal ' +
  'saddle salmon sandy seashell sienna sky slate smoke snow spring steel tan thistle tomato turquoise ' +
  'violet wheat white yellow'
).split(' ');
const TYPE1 = ['STANDARD', 'SMALL', 'MEDIUM', 'LARGE', 'ECONOMY', 'PROMO'];
const TYPE2 = ['ANODIZED', 'BURNISHED', 'PLATED', 'POLISHED', 'BRUSHED'];
const TYPE3 = ['TIN', 'NICKEL', 'BRASS', 'STEEL', 'COPPER'];
const CONT1 = ['SM', 'LG', 'MED', 'JUMBO', 'WRAP'];
const CONT2 = ['CASE', 'BOX', 'BAG', 'JAR', 'PKG', 'PACK', 'CAN', 'DRUM'];
const SEGMENTS = ['AUTOMOBILE', 'BUILDING', 'FURNITURE', 'MACHINERY', 'HOUSEHOLD'];
const PRIORITIES = ['1-URGENT', '2-HIGH', '3-MEDIUM', '4-NOT SPECIFIED', '5-LOW'];
const INSTRUCTS = ['DELIVER IN PERSON', 'COLLECT COD', 'NONE', 'TAKE BACK RETURN'];
const MODES = ['REG AIR', 'AIR', 'RAIL', 'SHIP', 'TRUCK', 'MAIL', 'FOB'];
const WORDS = (
  'furiously quickly carefully blithely slyly ironic final pending regular express special bold even ' +
  'silent unusual packages requests accounts deposits instructions theodolites pinto beans foxes ideas ' +
  'dependencies platelets asymptotes courts dolphins sleep wake nag haggle cajole boost use detect ' +
  'integrate engage among above across along'
).split(' ');

const DAY = 86_400_000;
const START = Date.UTC(1992, 0, 1);
const END = Date.UTC(1998, 11, 31);
const CURRENT = Date.UTC(1995, 5, 17);
const iso = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const money = (cents: number) => (cents / 100).toFixed(2);

export interface TpchRows {
  /** Table name → COPY text rows (tab-separated, newline-terminated). */
  [table: string]: string;
}

/** Every table's rows for `sizes`, the same for the same seed. */
export function tpchRows(sizes: TpchSizes = TPCH_SIZES, seed = 20261207): TpchRows {
  const r = rng(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  /** lo…hi random words, cut to the column's length `max`. */
  const text = (lo: number, hi: number, max = 40) => {
    const n = int(lo, hi);
    const w: string[] = [];
    for (let i = 0; i < n; i++) w.push(pick(WORDS));
    return w.join(' ').slice(0, max).trim();
  };
  const phone = (nation: number) => `${nation + 10}-${int(100, 999)}-${int(100, 999)}-${int(1000, 9999)}`;
  const out: TpchRows = {};

  out.region = REGIONS.map((n, i) => `${i}\t${n}\t${text(3, 8)}\n`).join('');
  out.nation = NATIONS.map(([n, reg], i) => `${i}\t${n}\t${reg}\t${text(3, 8)}\n`).join('');

  let s = '';
  for (let k = 1; k <= sizes.suppliers; k++) {
    const nation = int(0, 24);
    // Clause 4.2.3: some suppliers' comments hold "Customer … Complaints" (Q16), some "Recommends".
    let comment = text(4, 10, 101);
    if (k % 20 === 3) comment = `${pick(WORDS)} Customer ${pick(WORDS)} Complaints ${pick(WORDS)}`;
    if (k % 20 === 7) comment = `${pick(WORDS)} Customer ${pick(WORDS)} Recommends ${pick(WORDS)}`;
    s += `${k}\tSupplier#${String(k).padStart(9, '0')}\t${text(1, 3)}\t${nation}\t${phone(nation)}\t`;
    s += `${money(int(-99999, 999999))}\t${comment}\n`;
  }
  out.supplier = s;

  s = '';
  for (let k = 1; k <= sizes.customers; k++) {
    const nation = int(0, 24);
    s += `${k}\tCustomer#${String(k).padStart(9, '0')}\t${text(1, 3)}\t${nation}\t${phone(nation)}\t`;
    s += `${money(int(-99999, 999999))}\t${pick(SEGMENTS)}\t${text(4, 12, 117)}\n`;
  }
  out.customer = s;

  const retail: number[] = [];
  s = '';
  let ps = '';
  const S = sizes.suppliers;
  const suppliersOf = (p: number) =>
    [0, 1, 2, 3].map((i) => ((p + i * (Math.floor(S / 4) + Math.floor((p - 1) / S))) % S) + 1);
  for (let p = 1; p <= sizes.parts; p++) {
    const names = new Set<string>();
    while (names.size < 5) names.add(pick(COLOURS));
    const m = int(1, 5);
    const price = 90000 + (Math.floor(p / 10) % 20001) + 100 * (p % 1000);
    retail[p] = price;
    s += `${p}\t${[...names].join(' ')}\tManufacturer#${m}\tBrand#${m}${int(1, 5)}\t`;
    s += `${pick(TYPE1)} ${pick(TYPE2)} ${pick(TYPE3)}\t${int(1, 50)}\t${pick(CONT1)} ${pick(CONT2)}\t`;
    s += `${money(price)}\t${text(1, 3, 23)}\n`;
    for (const supp of suppliersOf(p)) {
      ps += `${p}\t${supp}\t${int(1, 9999)}\t${money(int(100, 100000))}\t${text(5, 15, 199)}\n`;
    }
  }
  out.part = s;
  out.partsupp = ps;

  s = '';
  let li = '';
  const lastOrderDay = (END - START) / DAY - 151;
  for (let o = 1; o <= sizes.orders; o++) {
    // Customers whose key is a multiple of 3 have no orders (clause 4.2.3).
    let cust = int(1, sizes.customers);
    while (cust % 3 === 0) cust = int(1, sizes.customers);
    const od = START + int(0, lastOrderDay) * DAY;
    const lines = int(1, 7);
    let total = 0;
    let fs = 0;
    for (let l = 1; l <= lines; l++) {
      const part = int(1, sizes.parts);
      const supp = suppliersOf(part)[int(0, 3)]!;
      const qty = int(1, 50);
      const ext = qty * retail[part]!;
      const disc = int(0, 10);
      const tax = int(0, 8);
      const ship = od + int(1, 121) * DAY;
      const commit = od + int(30, 90) * DAY;
      const receipt = ship + int(1, 30) * DAY;
      const flag = receipt <= CURRENT ? pick(['R', 'A']) : 'N';
      const status = ship > CURRENT ? 'O' : 'F';
      if (status === 'F') fs++;
      total += Math.round((ext * (100 + tax) * (100 - disc)) / 10000);
      li += `${o}\t${part}\t${supp}\t${l}\t${qty}.00\t${money(ext)}\t0.${String(disc).padStart(2, '0')}\t`;
      li += `0.0${tax}\t${flag}\t${status}\t${iso(ship)}\t${iso(commit)}\t${iso(receipt)}\t`;
      li += `${pick(INSTRUCTS)}\t${pick(MODES)}\t${text(2, 5, 44)}\n`;
    }
    const status = fs === lines ? 'F' : fs === 0 ? 'O' : 'P';
    // Some order comments match Q13's '%special%requests%'.
    const comment = o % 17 === 0 ? `${pick(WORDS)} special ${pick(WORDS)} requests` : text(3, 9, 79);
    s += `${o}\t${cust}\t${status}\t${money(total)}\t${iso(od)}\t${pick(PRIORITIES)}\t`;
    s += `Clerk#${String(int(1, 1000)).padStart(9, '0')}\t0\t${comment}\n`;
  }
  out.orders = s;
  out.lineitem = li;
  return out;
}
