//! One SQL interface over the two metadata backends: SQLite (embedded, `repro.db`) and
//! PostgreSQL (shared by a team). The statements are written once, in the dialect both
//! accept (`?N` placeholders, `INSERT … ON CONFLICT`, `TRUE`/`FALSE`); PostgreSQL gets
//! `$N` placeholders and, for the few SQLite functions the statements use (`json_each`,
//! `json`, `json_valid`, `json_extract`, `repro_like`), functions of the same name and
//! meaning created by the schema (`PG_FUNCTIONS`).
//!
//! The API mirrors rusqlite's (`execute`, `query_row`, `prepare` → `query_map`,
//! `transaction_with_behavior`, `optional`) so the store reads the same on both. Rows are
//! read into [`Val`]s, converted leniently between the two type systems (PostgreSQL's
//! `BIGINT`/`BOOLEAN`/`DOUBLE PRECISION` and SQLite's dynamic types).
//!
//! Write transactions (`Immediate`) are serialised on PostgreSQL by one transaction-scoped
//! advisory lock, as SQLite serialises writers: the store's "read the next number, then
//! insert it" steps (dataset versions, registry sequence numbers) stay correct with many
//! writers, without each needing its own locking.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::{Duration, Instant};

mod values;

pub(crate) use values::params;
/// How much of a SQLite database its reads map (set when a store opens it).
pub(crate) const MMAP_SIZE: i64 = 1 << 30;

pub use values::{Arg, ColIndex, FromVal, Params, Row, Val};

/// What went wrong talking to the database.
#[derive(Debug)]
pub enum DbError {
    Sqlite(rusqlite::Error),
    Postgres(postgres::Error),
    /// `query_row` found no row.
    NoRows,
    /// A column held something the reader cannot take.
    Type {
        index: usize,
        message: String,
    },
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbError::Sqlite(e) => write!(f, "{e}"),
            DbError::Postgres(e) => match e.as_db_error() {
                Some(db) => write!(f, "{} ({})", db.message(), db.code().code()),
                None if e.is_closed() => {
                    write!(f, "the connection to PostgreSQL was lost; check that the server is running, then try again")
                }
                None => {
                    // The driver's own text is terse ("error connecting to server"); the
                    // cause (refused, unknown host, auth) is in the source chain.
                    let mut text = e.to_string();
                    let mut source = std::error::Error::source(e);
                    while let Some(s) = source {
                        text = format!("{text}: {s}");
                        source = s.source();
                    }
                    write!(f, "{}", text.replace('\n', " "))
                }
            },
            DbError::NoRows => write!(f, "no such row"),
            DbError::Type { index, message } => write!(f, "column {index}: {message}"),
        }
    }
}

impl std::error::Error for DbError {}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::QueryReturnedNoRows => DbError::NoRows,
            e => DbError::Sqlite(e),
        }
    }
}
impl From<postgres::Error> for DbError {
    fn from(e: postgres::Error) -> Self {
        DbError::Postgres(e)
    }
}

impl DbError {
    /// A lost or refused connection: worth retrying once the server is back.
    pub fn is_connection(&self) -> bool {
        match self {
            DbError::Postgres(e) => connection_lost(e),
            _ => false,
        }
    }
}

/// A refused or lost connection (class 08), or the server ending the session (57P: shutdown,
/// restart), rather than anything about the statement.
fn connection_lost(e: &postgres::Error) -> bool {
    e.is_closed()
        || e.as_db_error().is_none_or(|d| d.code().code().starts_with("08"))
        || e.code().is_some_and(|c| c.code().starts_with("57P"))
}

pub type DbResult<T> = std::result::Result<T, DbError>;

/// `query_row(…).optional()`: no row is `None`.
pub trait OptionalExtension<T> {
    fn optional(self) -> DbResult<Option<T>>;
}
impl<T> OptionalExtension<T> for DbResult<T> {
    fn optional(self) -> DbResult<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(DbError::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// How a transaction begins. `Immediate` takes the write lock at once (SQLite's `BEGIN
/// IMMEDIATE`; the store-wide advisory lock on PostgreSQL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransactionBehavior {
    Immediate,
    /// A writer that only touches rows of its own (one run's points): SQLite's write lock as
    /// `Immediate`, but on PostgreSQL no store-wide lock, so writers to different runs commit
    /// side by side; what must not interleave takes [`Db::lock_key`].
    Concurrent,
}

/// The advisory lock key write transactions share on PostgreSQL ("repro" in ASCII).
const WRITE_LOCK: i64 = 0x72_6570_726f;

/// How long a lost PostgreSQL connection is retried before an operation gives up.
const RECONNECT_FOR: Duration = Duration::from_secs(30);

struct Pg {
    client: postgres::Client,
    /// Prepared statements by their SQLite-dialect text.
    statements: HashMap<String, postgres::Statement>,
}

/// A PostgreSQL connection and what re-makes it.
struct PgSide {
    config: postgres::Config,
    /// `None` only while being dropped.
    pg: RefCell<Option<Pg>>,
}

enum Backend {
    Sqlite(rusqlite::Connection),
    Postgres(Box<PgSide>),
}

/// A connection to the metadata database.
pub struct Db {
    backend: Backend,
    in_tx: Cell<bool>,
    /// SQLite: this process's writers to the same file, queued (see `WriterQueue`).
    writers: Option<std::sync::Arc<WriterQueue>>,
    /// Whether this connection's open transaction holds its place in `writers`.
    queued: Cell<bool>,
}

/// The writers of one SQLite file in this process, taking turns. SQLite lets one writer in
/// and makes the others poll (sleeping up to 100 ms between tries), which under a server's
/// concurrent requests turns into long tails; waiting on a condition variable instead hands
/// the lock over the moment it is free. Other processes still meet SQLite's own lock.
pub struct WriterQueue {
    busy: std::sync::Mutex<bool>,
    free: std::sync::Condvar,
}

impl WriterQueue {
    /// The queue of the database file at `path` (one per file per process).
    fn of(path: &std::path::Path) -> std::sync::Arc<WriterQueue> {
        use std::sync::{Arc, Mutex, OnceLock, Weak};
        static QUEUES: OnceLock<Mutex<HashMap<std::path::PathBuf, Weak<WriterQueue>>>> = OnceLock::new();
        let key = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        let mut queues = QUEUES.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
        if let Some(q) = queues.get(&key).and_then(Weak::upgrade) {
            return q;
        }
        queues.retain(|_, q| q.strong_count() > 0);
        let q = Arc::new(WriterQueue { busy: Mutex::new(false), free: std::sync::Condvar::new() });
        queues.insert(key, Arc::downgrade(&q));
        q
    }

    /// Waits for this process's turn; after the busy timeout it goes ahead anyway and leaves
    /// the rest to SQLite's lock (false: no turn taken, nothing to give back).
    fn enter(&self) -> bool {
        let busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        let (mut busy, waited) = self
            .free
            .wait_timeout_while(busy, std::time::Duration::from_secs(60), |b| *b)
            .unwrap_or_else(|p| p.into_inner());
        if waited.timed_out() {
            return false;
        }
        *busy = true;
        true
    }

    fn leave(&self) {
        *self.busy.lock().unwrap_or_else(|p| p.into_inner()) = false;
        self.free.notify_one();
    }
}

impl Db {
    /// The SQLite database at `path`, open as `conn`.
    pub fn sqlite(conn: rusqlite::Connection, path: &std::path::Path) -> Db {
        let writers = Some(WriterQueue::of(path));
        Db { backend: Backend::Sqlite(conn), in_tx: Cell::new(false), writers, queued: Cell::new(false) }
    }

    /// Connects to PostgreSQL. A first connection is tried once, so a wrong address fails at
    /// once; re-connecting after a lost connection waits for the server (see `with_pg`).
    pub fn postgres(url: &str) -> DbResult<Db> {
        let mut config: postgres::Config = url.parse()?;
        // The URL never holds a password (repro.toml is not for secrets); libpq's variable does.
        if let Some(pw) = std::env::var_os("PGPASSWORD").filter(|p| !p.is_empty()) {
            if config.get_password().is_none() {
                config.password(pw.as_encoded_bytes());
            }
        }
        let client = config.connect(postgres::NoTls)?;
        Ok(Db {
            backend: Backend::Postgres(Box::new(PgSide {
                config,
                pg: RefCell::new(Some(Pg { client, statements: HashMap::new() })),
            })),
            in_tx: Cell::new(false),
            writers: None,
            queued: Cell::new(false),
        })
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// Runs statements separated by `;`, with no parameters (schemas).
    pub fn execute_batch(&self, sql: &str) -> DbResult<()> {
        match &self.backend {
            Backend::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Backend::Postgres(_) => self.with_pg(|pg| pg.client.batch_execute(sql)),
        }
    }

    pub fn execute<P: Params>(&self, sql: &str, params: P) -> DbResult<usize> {
        let vals = params.vals();
        match &self.backend {
            Backend::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                Ok(stmt.execute(rusqlite::params_from_iter(vals.iter()))?)
            }
            Backend::Postgres(_) => self.with_pg(|pg| {
                let stmt = pg.prepare(sql)?;
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    vals.iter().map(|v| v as &(dyn postgres::types::ToSql + Sync)).collect();
                pg.client.execute(&stmt, &refs).map(|n| n as usize)
            }),
        }
    }

    /// Every row of a query.
    pub fn query_rows<P: Params>(&self, sql: &str, params: P) -> DbResult<Vec<Row>> {
        let vals = params.vals();
        match &self.backend {
            Backend::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let n = stmt.column_count();
                let mut rows = stmt.query(rusqlite::params_from_iter(vals.iter()))?;
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    let mut row = Vec::with_capacity(n);
                    for i in 0..n {
                        row.push(match r.get_ref(i)? {
                            rusqlite::types::ValueRef::Null => Val::Null,
                            rusqlite::types::ValueRef::Integer(i) => Val::Int(i),
                            rusqlite::types::ValueRef::Real(f) => Val::Real(f),
                            rusqlite::types::ValueRef::Text(t) => Val::Text(String::from_utf8_lossy(t).into_owned()),
                            rusqlite::types::ValueRef::Blob(b) => Val::Blob(b.to_vec()),
                        });
                    }
                    out.push(Row { vals: row });
                }
                Ok(out)
            }
            Backend::Postgres(_) => {
                let rows = self.with_pg(|pg| {
                    let stmt = pg.prepare(sql)?;
                    let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                        vals.iter().map(|v| v as &(dyn postgres::types::ToSql + Sync)).collect();
                    pg.client.query(&stmt, &refs)
                })?;
                rows.iter()
                    .map(|r| {
                        let vals = (0..r.len()).map(|i| r.try_get::<_, Val>(i)).collect::<Result<Vec<_>, _>>()?;
                        Ok(Row { vals })
                    })
                    .collect()
            }
        }
    }

    pub fn query_row<T, P: Params>(&self, sql: &str, params: P, f: impl FnOnce(&Row) -> DbResult<T>) -> DbResult<T> {
        let rows = self.query_rows(sql, params)?;
        f(rows.first().ok_or(DbError::NoRows)?)
    }

    /// The column names of `table`, in order (PostgreSQL's own `rowid` left out: it is the
    /// stand-in for SQLite's implicit one).
    pub fn columns(&self, table: &str) -> DbResult<Vec<String>> {
        let rows = if self.is_postgres() {
            self.query_rows(
                "SELECT column_name FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = ?1 AND column_name != 'rowid'
                 ORDER BY ordinal_position",
                [table],
            )?
        } else {
            self.query_rows("SELECT name FROM pragma_table_info(?1) ORDER BY cid", [table])?
        };
        rows.iter().map(|r| r.get(0)).collect()
    }

    /// A statement to run (or query) with several parameter sets.
    pub fn prepare(&self, sql: &str) -> DbResult<Stmt<'_>> {
        Ok(Stmt { db: self, sql: sql.to_string() })
    }

    pub fn prepare_cached(&self, sql: &str) -> DbResult<Stmt<'_>> {
        self.prepare(sql)
    }

    pub fn transaction_with_behavior(&self, behavior: TransactionBehavior) -> DbResult<Tx<'_>> {
        match (&self.backend, behavior) {
            (Backend::Sqlite(c), TransactionBehavior::Immediate | TransactionBehavior::Concurrent) => {
                self.queued.set(self.writers.as_ref().is_some_and(|q| q.enter()));
                if let Err(e) = c.execute_batch("BEGIN IMMEDIATE") {
                    self.end_turn();
                    return Err(e.into());
                }
            }
            (Backend::Postgres(_), _) => {
                self.execute_batch("BEGIN")?;
                self.in_tx.set(true);
                if behavior == TransactionBehavior::Immediate {
                    if let Err(e) = self.query_rows("SELECT pg_advisory_xact_lock(?1)", [WRITE_LOCK]) {
                        self.rollback();
                        return Err(e);
                    }
                }
            }
        }
        self.in_tx.set(true);
        Ok(Tx { db: self, done: false })
    }

    /// Inside a transaction: waits until no other transaction holds `key` (a run id), until
    /// this one ends. SQLite has one writer at a time already; PostgreSQL takes an advisory lock.
    pub fn lock_key(&self, key: &str) -> DbResult<()> {
        if self.is_postgres() {
            let hash = blake3::hash(key.as_bytes());
            let mut head = [0u8; 8];
            head.copy_from_slice(&hash.as_bytes()[..8]);
            self.query_rows("SELECT pg_advisory_xact_lock(?1)", [i64::from_le_bytes(head)])?;
        }
        Ok(())
    }

    /// Gives this connection's turn among the process's writers back, if it holds one.
    fn end_turn(&self) {
        if self.queued.replace(false) {
            if let Some(q) = &self.writers {
                q.leave();
            }
        }
    }

    fn rollback(&self) {
        let _ = match &self.backend {
            Backend::Sqlite(c) => c.execute_batch("ROLLBACK").map_err(DbError::from),
            Backend::Postgres(side) => match side.pg.borrow_mut().as_mut() {
                Some(pg) => pg.client.batch_execute("ROLLBACK").map_err(DbError::from),
                None => Ok(()),
            },
        };
        self.in_tx.set(false);
        self.end_turn();
    }

    /// Runs `f` on the PostgreSQL connection; outside a transaction, a lost connection is
    /// re-made (waiting for a restarting server) and `f` tried once more.
    fn with_pg<T>(&self, f: impl Fn(&mut Pg) -> Result<T, postgres::Error>) -> DbResult<T> {
        let Backend::Postgres(side) = &self.backend else { unreachable!("with_pg on a SQLite connection") };
        let config = &side.config;
        let mut guard = side.pg.borrow_mut();
        let Some(pg) = guard.as_mut() else {
            return Err(DbError::Type { index: 0, message: "the connection is closed".into() });
        };
        if pg.client.is_closed() && !self.in_tx.get() {
            pg.client = connect_retrying(config)?;
            pg.statements.clear();
        }
        match f(pg) {
            Err(e) if !self.in_tx.get() && (pg.client.is_closed() || connection_lost(&e)) => {
                // Outside a transaction the statement either never reached a live server (a
                // dead socket, a session the server ended while idle) or was aborted with the
                // session: nothing of it was committed, so trying it again on a new
                // connection does not apply it twice.
                pg.client = connect_retrying(config)?;
                pg.statements.clear();
                Ok(f(pg)?)
            }
            other => Ok(other?),
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        // The driver's client blocks on its own runtime when it closes, which panics inside
        // another (a server's pool dropped as the server stops): close it on a thread of its own.
        if let Backend::Postgres(side) = &mut self.backend {
            if tokio::runtime::Handle::try_current().is_ok() {
                if let Some(pg) = side.pg.get_mut().take() {
                    let _ = std::thread::spawn(move || drop(pg)).join();
                }
            }
        }
    }
}

fn connect_retrying(config: &postgres::Config) -> DbResult<postgres::Client> {
    let start = Instant::now();
    loop {
        match config.connect(postgres::NoTls) {
            Ok(c) => return Ok(c),
            Err(e) => {
                let err = DbError::Postgres(e);
                // A server starting up or shutting down refuses for a moment; anything else
                // (wrong database, authentication) will not get better by waiting.
                if !err.is_connection() || start.elapsed() > RECONNECT_FOR {
                    return Err(err);
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    }
}

impl Pg {
    fn prepare(&mut self, sql: &str) -> Result<postgres::Statement, postgres::Error> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let stmt = self.client.prepare(&dollar_placeholders(sql))?;
        self.statements.insert(sql.to_string(), stmt.clone());
        Ok(stmt)
    }
}

/// `?N` → `$N` outside string literals and quoted names.
pub fn dollar_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    for c in sql.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '\'' | '"') => quote = Some(c),
            (None, '?') => {
                out.push('$');
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

/// A prepared statement (rusqlite-style).
pub struct Stmt<'a> {
    db: &'a Db,
    sql: String,
}

impl Stmt<'_> {
    pub fn execute<P: Params>(&mut self, params: P) -> DbResult<usize> {
        self.db.execute(&self.sql, params)
    }

    /// Each row through `f`, as rusqlite's `query_map` (an iterator of results).
    pub fn query_map<T, P: Params>(
        &mut self,
        params: P,
        mut f: impl FnMut(&Row) -> DbResult<T>,
    ) -> DbResult<std::vec::IntoIter<DbResult<T>>> {
        let rows = self.db.query_rows(&self.sql, params)?;
        Ok(rows.iter().map(&mut f).collect::<Vec<_>>().into_iter())
    }

    pub fn query_row<T, P: Params>(&mut self, params: P, f: impl FnOnce(&Row) -> DbResult<T>) -> DbResult<T> {
        self.db.query_row(&self.sql, params, f)
    }
}

/// A transaction: rolled back when dropped uncommitted.
pub struct Tx<'a> {
    db: &'a Db,
    done: bool,
}

impl Tx<'_> {
    pub fn commit(mut self) -> DbResult<()> {
        self.done = true;
        let result = self.db.execute_batch("COMMIT");
        self.db.in_tx.set(false);
        if result.is_err() {
            self.db.rollback();
        }
        self.db.end_turn();
        result
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = Db;
    fn deref(&self) -> &Db {
        self.db
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.db.rollback();
        }
    }
}

// ---- conversions ------------------------------------------------------------------------

impl rusqlite::ToSql for Val {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Val::Null => ValueRef::Null,
            Val::Int(i) => ValueRef::Integer(*i),
            Val::Real(f) => ValueRef::Real(*f),
            Val::Text(s) => ValueRef::Text(s.as_bytes()),
            Val::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

type BoxError = Box<dyn std::error::Error + Sync + Send>;

/// Binds to whatever type PostgreSQL inferred for the parameter, as SQLite would take it.
impl postgres::types::ToSql for Val {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<postgres::types::IsNull, BoxError> {
        use postgres::types::{IsNull, Type};
        let text = |s: &str, out: &mut bytes::BytesMut| -> Result<IsNull, BoxError> {
            if *ty == Type::JSONB {
                out.extend_from_slice(&[1]);
            }
            out.extend_from_slice(s.as_bytes());
            Ok(IsNull::No)
        };
        match (self, ty) {
            (Val::Null, _) => Ok(IsNull::Yes),
            (Val::Int(i), &Type::INT8) => i.to_sql(ty, out),
            (Val::Int(i), &Type::INT4) => i32::try_from(*i)?.to_sql(ty, out),
            (Val::Int(i), &Type::INT2) => i16::try_from(*i)?.to_sql(ty, out),
            (Val::Int(i), &Type::FLOAT8) => (*i as f64).to_sql(ty, out),
            (Val::Int(i), &Type::FLOAT4) => (*i as f32).to_sql(ty, out),
            (Val::Int(i), &Type::BOOL) => (*i != 0).to_sql(ty, out),
            (Val::Int(i), _) => text(&i.to_string(), out),
            (Val::Real(f), &Type::FLOAT8) => f.to_sql(ty, out),
            (Val::Real(f), &Type::FLOAT4) => (*f as f32).to_sql(ty, out),
            (Val::Real(f), &Type::INT8) if f.fract() == 0.0 => (*f as i64).to_sql(ty, out),
            (Val::Real(f), _) => text(&f.to_string(), out),
            (Val::Text(s), &Type::INT8) => s.parse::<i64>()?.to_sql(ty, out),
            (Val::Text(s), &Type::FLOAT8) => s.parse::<f64>()?.to_sql(ty, out),
            (Val::Text(s), &Type::BYTEA) => s.as_bytes().to_sql(ty, out),
            (Val::Text(s), _) if s.contains('\0') => {
                Err("the text holds a NUL character, which PostgreSQL cannot store; remove it".into())
            }
            (Val::Text(s), _) => text(s, out),
            (Val::Blob(b), _) => b.as_slice().to_sql(ty, out),
        }
    }

    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

impl<'a> postgres::types::FromSql<'a> for Val {
    fn from_sql(ty: &postgres::types::Type, raw: &'a [u8]) -> Result<Val, BoxError> {
        use postgres::types::Type;
        Ok(match *ty {
            Type::BOOL => Val::Int(i64::from(bool::from_sql(ty, raw)?)),
            Type::INT2 => Val::Int(i64::from(i16::from_sql(ty, raw)?)),
            Type::INT4 => Val::Int(i64::from(i32::from_sql(ty, raw)?)),
            Type::INT8 => Val::Int(i64::from_sql(ty, raw)?),
            Type::FLOAT4 => Val::Real(f64::from(f32::from_sql(ty, raw)?)),
            Type::FLOAT8 => Val::Real(f64::from_sql(ty, raw)?),
            Type::BYTEA => Val::Blob(raw.to_vec()),
            Type::JSONB => Val::Text(String::from_utf8(raw.get(1..).unwrap_or_default().to_vec())?),
            Type::VOID => Val::Null,
            _ => Val::Text(String::from_utf8(raw.to_vec())?),
        })
    }

    fn from_sql_null(_: &postgres::types::Type) -> Result<Val, BoxError> {
        Ok(Val::Null)
    }

    fn accepts(ty: &postgres::types::Type) -> bool {
        use postgres::types::{Kind, Type};
        // Text-like types arrive as UTF-8; NUMERIC's binary form does not, so cast it.
        *ty != Type::NUMERIC && matches!(ty.kind(), Kind::Simple | Kind::Pseudo)
    }
}

/// The PostgreSQL form of a schema step written for SQLite: types, autoincrement keys,
/// `WITHOUT ROWID`, and byte-wise (`C`) text ordering, which is SQLite's.
pub fn postgres_ddl(sql: &str) -> String {
    sql.replace(" INTEGER PRIMARY KEY AUTOINCREMENT", " BIGSERIAL PRIMARY KEY")
        .replace(" INTEGER", " BIGINT")
        .replace(" REAL", " DOUBLE PRECISION")
        .replace(" BLOB", " BYTEA")
        .replace(" TEXT", " TEXT COLLATE \"C\"")
        .replace(") WITHOUT ROWID", ")")
        .replace("INSERT OR IGNORE INTO", "INSERT INTO")
}

/// SQLite's functions (and its `->` on text) that the store's statements call, for PostgreSQL. `json_each` returns
/// text values (strings unquoted, anything else as JSON), as SQLite's does for `value`
/// with `type = 'text'` marking strings.
pub const PG_FUNCTIONS: &str = r#"
CREATE OR REPLACE FUNCTION json(doc text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT doc $$;
CREATE OR REPLACE FUNCTION repro_json_text(v jsonb) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN jsonb_typeof(v) = 'string' THEN v #>> '{}' ELSE v::text END $$;
CREATE OR REPLACE FUNCTION repro_json_type(v jsonb) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE jsonb_typeof(v) WHEN 'string' THEN 'text' WHEN 'number' THEN 'real' ELSE jsonb_typeof(v) END $$;
CREATE OR REPLACE FUNCTION json_each(doc text, path text) RETURNS TABLE(key text, value text, type text, fullkey text)
LANGUAGE sql IMMUTABLE AS $$
  SELECT e.key, repro_json_text(e.value), repro_json_type(e.value),
         to_jsonb(string_to_array(substr(path, 3), '.') || e.key)::text
  FROM jsonb_each(CASE WHEN jsonb_typeof((doc::jsonb) #> string_to_array(substr(path, 3), '.')) = 'object'
                       THEN (doc::jsonb) #> string_to_array(substr(path, 3), '.') ELSE '{}'::jsonb END) e $$;
CREATE OR REPLACE FUNCTION json_each(doc text) RETURNS TABLE(key text, value text, type text, fullkey text)
LANGUAGE sql IMMUTABLE AS $$
  SELECT (e.n - 1)::text, repro_json_text(e.v), repro_json_type(e.v), to_jsonb(ARRAY[(e.n - 1)::text])::text
  FROM jsonb_array_elements(doc::jsonb) WITH ORDINALITY e(v, n) $$;
-- `doc -> fullkey`: the JSON at a `fullkey` of json_each (a JSON array of path steps here).
CREATE OR REPLACE FUNCTION repro_json_at(doc text, path text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT ((doc::jsonb) #> ARRAY(SELECT jsonb_array_elements_text(path::jsonb)))::text $$;
DO $$ BEGIN
  CREATE OPERATOR -> (LEFTARG = text, RIGHTARG = text, FUNCTION = repro_json_at);
EXCEPTION WHEN duplicate_function THEN NULL;
END $$;
CREATE OR REPLACE FUNCTION json_valid(doc text) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  PERFORM doc::jsonb;
  RETURN true;
EXCEPTION WHEN others THEN
  RETURN false;
END $$;
CREATE OR REPLACE FUNCTION json_extract(doc text, path text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT repro_json_text((doc::jsonb) -> trim(both '"' from substr(path, 3))) $$;
CREATE OR REPLACE FUNCTION repro_like(pattern text, t text, folded bigint) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN folded <> 0 THEN lower(t COLLATE "und-x-icu") LIKE lower(pattern COLLATE "und-x-icu") ESCAPE ''
              ELSE t LIKE pattern ESCAPE '' END $$;
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_outside_quotes_become_dollars() {
        assert_eq!(
            dollar_placeholders("SELECT a FROM t WHERE b = ?1 AND c = '?2' AND \"?\" = ?3"),
            "SELECT a FROM t WHERE b = $1 AND c = '?2' AND \"?\" = $3"
        );
    }

    #[test]
    fn ddl_translates_types() {
        let pg = postgres_ddl(
            "CREATE TABLE t (seq INTEGER PRIMARY KEY AUTOINCREMENT, v REAL NOT NULL, b BLOB, s TEXT) WITHOUT ROWID;",
        );
        assert_eq!(
            pg,
            "CREATE TABLE t (seq BIGSERIAL PRIMARY KEY, v DOUBLE PRECISION NOT NULL, b BYTEA, s TEXT COLLATE \"C\");"
        );
    }

    #[test]
    fn sqlite_round_trips_values_and_transactions() {
        let db = Db::sqlite(rusqlite::Connection::open_in_memory().expect("open"), std::path::Path::new(":memory:"));
        db.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY, n INTEGER, f REAL, b BLOB)").expect("create");
        db.execute("INSERT INTO t VALUES (?1, ?2, ?3, ?4)", params!["a", 7u32, 0.5, vec![1u8, 2]]).expect("insert");
        {
            let tx = db.transaction_with_behavior(TransactionBehavior::Immediate).expect("begin");
            tx.execute("INSERT INTO t (k) VALUES (?1)", ["b"]).expect("insert");
        }
        let n: i64 = db.query_row("SELECT COUNT(*) FROM t", params![], |r| r.get(0)).expect("count");
        assert_eq!(n, 1, "a dropped transaction rolls back");
        let (n, f, b): (u32, f64, Vec<u8>) = db
            .query_row("SELECT n, f, b FROM t WHERE k = ?1", ["a"], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("row");
        assert_eq!((n, f, b), (7, 0.5, vec![1, 2]));
        assert!(db
            .query_row("SELECT n FROM t WHERE k = ?1", ["zz"], |r| r.get::<_, i64>(0))
            .optional()
            .expect("ok")
            .is_none());
        let e = db.query_row("SELECT k FROM t", params![], |r| r.get::<_, i64>(0)).expect_err("text is no integer");
        assert!(e.to_string().contains("column 0"), "{e}");
    }
}
