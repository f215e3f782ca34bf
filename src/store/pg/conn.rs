//! How the store's statements reach PostgreSQL: every statement goes through a
//! [`Sql`] handle, which sends it the way `[store] postgres_statements` says.
//!
//! - [`Statements::Cached`] (the default): the hot paths' statements are prepared
//!   once per connection and kept in deadpool's statement cache, so a call is one
//!   exchange (bind and execute); the rest are prepared, run and closed, as
//!   tokio-postgres does for a query given as text. Both leave named statements on
//!   the server connection between exchanges, which a pooler in transaction mode
//!   (PgBouncer before 1.21, or without `max_prepared_statements`) cannot follow.
//! - [`Statements::Unnamed`]: every statement is sent as the unnamed statement with
//!   its parameters' types, parse, bind and execute in one exchange, so nothing
//!   outlives it on the server connection and any pooler in transaction mode works.
//!   Each call is planned again (cached, the hot paths' statements are planned as
//!   `plans.rs` says).
//!
//! A [`Conn`] is a pooled connection and a [`Tx`] a transaction on one, each with
//! the mode; their `query`, `query_one`, `query_opt` and `execute` are those of
//! [`Sql`].

use bytes::BytesMut;
use deadpool_postgres::StatementCache;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Error, IsolationLevel, Row};

/// How statements are sent (`[store] postgres_statements`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Statements {
    /// Prepared as named statements, the hot paths' kept per connection.
    #[default]
    Cached,
    /// Sent as the unnamed statement with explicit parameter types, one exchange
    /// each, nothing left on the server connection: for PgBouncer (or another
    /// pooler) in transaction mode without prepared statement support.
    Unnamed,
}

impl Statements {
    /// The value as written in the config file.
    pub fn name(self) -> &'static str {
        match self {
            Statements::Cached => "cached",
            Statements::Unnamed => "unnamed",
        }
    }

    /// Parses the config value (`cached` or `unnamed`, any case).
    pub fn parse(text: &str) -> Option<Statements> {
        [Statements::Cached, Statements::Unnamed]
            .into_iter()
            .find(|s| text.trim().eq_ignore_ascii_case(s.name()))
    }
}

/// A statement's parameters, as tokio-postgres takes them.
pub(crate) type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

/// Where a statement runs (a connection, or the connection of a transaction), and
/// how it is sent there.
#[derive(Clone, Copy)]
pub(crate) struct Sql<'a> {
    client: &'a Client,
    cache: &'a StatementCache,
    mode: Statements,
}

impl Sql<'_> {
    /// The rows of `q`.
    pub(crate) async fn query(self, q: &str, params: Params<'_>) -> Result<Vec<Row>, Error> {
        match self.mode {
            Statements::Cached => self.client.query(q, params).await,
            Statements::Unnamed => self.client.query_typed(q, &typed(params)).await,
        }
    }

    /// The one row of `q` (an error when there is none or more than one).
    pub(crate) async fn query_one(self, q: &str, params: Params<'_>) -> Result<Row, Error> {
        match self.mode {
            Statements::Cached => self.client.query_one(q, params).await,
            Statements::Unnamed => self.client.query_typed_one(q, &typed(params)).await,
        }
    }

    /// The row of `q`, if any (an error when there are several).
    pub(crate) async fn query_opt(self, q: &str, params: Params<'_>) -> Result<Option<Row>, Error> {
        match self.mode {
            Statements::Cached => self.client.query_opt(q, params).await,
            Statements::Unnamed => self.client.query_typed_opt(q, &typed(params)).await,
        }
    }

    /// Runs `q`; the number of rows it changed.
    pub(crate) async fn execute(self, q: &str, params: Params<'_>) -> Result<u64, Error> {
        match self.mode {
            Statements::Cached => self.client.execute(q, params).await,
            Statements::Unnamed => self.client.execute_typed(q, &typed(params)).await,
        }
    }

    /// Runs `q`, one or more statements without parameters (the simple protocol,
    /// which leaves nothing behind in either mode).
    pub(crate) async fn batch_execute(self, q: &str) -> Result<(), Error> {
        self.client.batch_execute(q).await
    }

    /// [`Sql::query`] of a hot-path statement (claim, completion, renewal, release,
    /// ingest): when statements are cached, prepared once per pooled connection and
    /// kept in deadpool's statement cache, so a call is one exchange (bind and
    /// execute), not two. The schema is migrated before the pool serves anything,
    /// so a cached statement never outlives the tables it was planned against.
    /// Unnamed, it goes as every other statement does.
    pub(crate) async fn cached_query(self, q: &str, params: Params<'_>) -> Result<Vec<Row>, Error> {
        match self.mode {
            Statements::Cached => {
                let st = self.cache.prepare(self.client, q).await?;
                self.client.query(&st, params).await
            }
            Statements::Unnamed => self.query(q, params).await,
        }
    }

    /// [`Sql::query_one`] of a hot-path statement.
    pub(crate) async fn cached_query_one(self, q: &str, params: Params<'_>) -> Result<Row, Error> {
        match self.mode {
            Statements::Cached => {
                let st = self.cache.prepare(self.client, q).await?;
                self.client.query_one(&st, params).await
            }
            Statements::Unnamed => self.query_one(q, params).await,
        }
    }

    /// [`Sql::execute`] of a hot-path statement.
    pub(crate) async fn cached_execute(self, q: &str, params: Params<'_>) -> Result<u64, Error> {
        match self.mode {
            Statements::Cached => {
                let st = self.cache.prepare(self.client, q).await?;
                self.client.execute(&st, params).await
            }
            Statements::Unnamed => self.execute(q, params).await,
        }
    }

    /// The rows of two hot-path statements, pipelined (one round trip) and run by
    /// the server in the order given: the second sees what the first did, such as
    /// the locks it took. Statements not yet prepared on this connection are
    /// prepared first, one by one, since a statement waiting for its prepare would
    /// otherwise be sent behind one given after it.
    pub(crate) async fn cached_query_in_order(
        self,
        first: (&str, Params<'_>),
        then: (&str, Params<'_>),
    ) -> Result<(Vec<Row>, Vec<Row>), Error> {
        match self.mode {
            Statements::Cached => {
                let a = self.cache.prepare(self.client, first.0).await?;
                let b = self.cache.prepare(self.client, then.0).await?;
                // `biased`: polled in the order written, so sent in that order.
                tokio::try_join!(
                    biased;
                    self.client.query(&a, first.1),
                    self.client.query(&b, then.1)
                )
            }
            Statements::Unnamed => {
                let (a, b) = (typed(first.1), typed(then.1));
                tokio::try_join!(
                    biased;
                    self.client.query_typed(first.0, &a),
                    self.client.query_typed(then.0, &b)
                )
            }
        }
    }
}

/// The PostgreSQL types a parameter may be sent as, most specific first: each
/// parameter goes as the first one its Rust type accepts (an `i64` as `int8`, a
/// `String` as `text`, a `Vec<i64>` as `int8[]`, an `Option` as its inner type).
/// The server converts where the statement wants another type it can convert to,
/// as it does for a cast. A type none of them fits is sent as `unknown`, which
/// tokio-postgres refuses with an error naming the Rust type.
const CANDIDATES: [Type; 20] = [
    Type::TEXT,
    Type::INT8,
    Type::INT4,
    Type::INT2,
    Type::BOOL,
    Type::BYTEA,
    Type::JSONB,
    Type::FLOAT8,
    Type::FLOAT4,
    Type::TIMESTAMPTZ,
    Type::CHAR,
    Type::OID,
    Type::TEXT_ARRAY,
    Type::INT8_ARRAY,
    Type::INT4_ARRAY,
    Type::INT2_ARRAY,
    Type::BOOL_ARRAY,
    Type::BYTEA_ARRAY,
    Type::JSONB_ARRAY,
    Type::FLOAT8_ARRAY,
];

/// Each parameter with the type it is sent as (see [`CANDIDATES`]).
fn typed<'p>(params: Params<'p>) -> Vec<(&'p (dyn ToSql + Sync), Type)> {
    let mut scratch = BytesMut::new();
    params
        .iter()
        .map(|&p| {
            let ty = CANDIDATES
                .iter()
                .find(|ty| {
                    scratch.clear();
                    p.to_sql_checked(ty, &mut scratch).is_ok()
                })
                .cloned()
                .unwrap_or(Type::UNKNOWN);
            (p, ty)
        })
        .collect()
}

/// What statements can run on: a connection, a transaction, or a [`Sql`] handle.
pub(crate) trait AsSql {
    fn sql(&self) -> Sql<'_>;
}

impl AsSql for Sql<'_> {
    fn sql(&self) -> Sql<'_> {
        *self
    }
}

/// A pooled connection and the store's statement mode.
pub(crate) struct Conn {
    client: deadpool_postgres::Object,
    mode: Statements,
}

impl Conn {
    pub(crate) fn new(client: deadpool_postgres::Object, mode: Statements) -> Conn {
        Conn { client, mode }
    }

    /// Starts a transaction (read committed, read-write).
    pub(crate) async fn transaction(&mut self) -> Result<Tx<'_>, Error> {
        let tx = self.client.transaction().await?;
        Ok(Tx {
            tx,
            mode: self.mode,
        })
    }

    /// Starts a read-only transaction at `isolation`.
    pub(crate) async fn read_only(&mut self, isolation: IsolationLevel) -> Result<Tx<'_>, Error> {
        let tx = self
            .client
            .build_transaction()
            .isolation_level(isolation)
            .read_only(true)
            .start()
            .await?;
        Ok(Tx {
            tx,
            mode: self.mode,
        })
    }
}

/// A transaction on a pooled connection, and the store's statement mode. Dropped
/// without [`Tx::commit`], it rolls back.
pub(crate) struct Tx<'a> {
    tx: deadpool_postgres::Transaction<'a>,
    mode: Statements,
}

impl<'a> Tx<'a> {
    /// Wraps a transaction tokio-postgres started (the store copy's).
    pub(crate) fn new(tx: deadpool_postgres::Transaction<'a>, mode: Statements) -> Tx<'a> {
        Tx { tx, mode }
    }

    pub(crate) async fn commit(self) -> Result<(), Error> {
        self.tx.commit().await
    }

    /// Runs statements without parameters (the simple protocol).
    pub(crate) async fn batch_execute(&self, q: &str) -> Result<(), Error> {
        self.sql().batch_execute(q).await
    }
}

impl AsSql for Conn {
    fn sql(&self) -> Sql<'_> {
        Sql {
            client: &self.client,
            cache: &self.client.statement_cache,
            mode: self.mode,
        }
    }
}

impl AsSql for Tx<'_> {
    fn sql(&self) -> Sql<'_> {
        Sql {
            client: self.tx.client(),
            cache: &self.tx.statement_cache,
            mode: self.mode,
        }
    }
}

/// `query`, `query_one`, `query_opt` and `execute` on a connection or a
/// transaction, as [`Sql`]'s.
macro_rules! forward {
    ($t:ty) => {
        impl $t {
            pub(crate) async fn query(&self, q: &str, p: Params<'_>) -> Result<Vec<Row>, Error> {
                self.sql().query(q, p).await
            }
            pub(crate) async fn query_one(&self, q: &str, p: Params<'_>) -> Result<Row, Error> {
                self.sql().query_one(q, p).await
            }
            pub(crate) async fn query_opt(
                &self,
                q: &str,
                p: Params<'_>,
            ) -> Result<Option<Row>, Error> {
                self.sql().query_opt(q, p).await
            }
            pub(crate) async fn execute(&self, q: &str, p: Params<'_>) -> Result<u64, Error> {
                self.sql().execute(q, p).await
            }
        }
    };
}
forward!(Conn);
forward!(Tx<'_>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_parameter_goes_as_the_type_its_rust_type_names() {
        let text = String::from("a");
        let id = 7_i64;
        let count = 3_i32;
        let flag = true;
        let bytes = vec![1_u8, 2];
        let none: Option<i64> = None;
        let some: Option<&str> = Some("b");
        let ids = vec![1_i64, 2];
        let names = vec![String::from("x")];
        let refs: &[&String] = &[&text];
        let json = serde_json::json!({"a": 1});
        let jsons = vec![json.clone()];
        let params: [&(dyn ToSql + Sync); 12] = [
            &text, &id, &count, &flag, &bytes, &none, &some, &ids, &names, &refs, &json, &jsons,
        ];
        let types: Vec<Type> = typed(&params).into_iter().map(|(_, t)| t).collect();
        assert_eq!(
            types,
            [
                Type::TEXT,
                Type::INT8,
                Type::INT4,
                Type::BOOL,
                Type::BYTEA,
                Type::INT8,
                Type::TEXT,
                Type::INT8_ARRAY,
                Type::TEXT_ARRAY,
                Type::TEXT_ARRAY,
                Type::JSONB,
                Type::JSONB_ARRAY,
            ]
        );
    }

    #[test]
    fn the_mode_is_parsed_by_name() {
        assert_eq!(Statements::parse("cached"), Some(Statements::Cached));
        assert_eq!(Statements::parse(" Unnamed "), Some(Statements::Unnamed));
        assert_eq!(Statements::parse("named"), None);
        assert_eq!(Statements::default(), Statements::Cached);
    }
}
