//! SQL text with `?` placeholders and the values bound to them.

use sqlx::mysql::MySqlArguments;
use sqlx::postgres::PgArguments;
use sqlx::query::{Query, QueryAs};
use sqlx::sqlite::SqliteArguments;
use sqlx::{MySql, Postgres, Sqlite};

use crate::Engine;

/// A value bound to a placeholder. Text, integers and booleans are all FerroStack stores:
/// ids and JSON as text, instants as epoch microseconds.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A NULL of the given type: PostgreSQL wants typed parameters even for NULL.
    Null(Kind),
    Bool(bool),
    Int(i64),
    Text(String),
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
/// The SQL type of a NULL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int,
    Text,
}

macro_rules! from_option {
    ($t:ty, $kind:expr) => {
        impl From<Option<$t>> for Value {
            fn from(v: Option<$t>) -> Self {
                v.map_or(Value::Null($kind), Into::into)
            }
        }
    };
}
from_option!(String, Kind::Text);
from_option!(&str, Kind::Text);
from_option!(&String, Kind::Text);
from_option!(i64, Kind::Int);
from_option!(bool, Kind::Bool);

/// A statement under construction: text with `?` placeholders plus their values, in order.
/// Never put a literal `?` in the text; bind it.
#[derive(Clone, Debug, Default)]
pub struct Sql {
    text: String,
    binds: Vec<Value>,
}

impl Sql {
    /// Starts a statement with `text`, which may contain `?` placeholders bound later with
    /// [`Sql::arg`].
    pub fn new(text: &str) -> Self {
        Sql {
            text: text.to_string(),
            binds: Vec::new(),
        }
    }

    /// Appends raw SQL text (never user input).
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Supplies the value for the next `?` already in the text.
    pub fn arg(mut self, value: impl Into<Value>) -> Self {
        self.binds.push(value.into());
        self
    }

    /// Appends a `?` placeholder bound to `value`.
    pub fn bind(&mut self, value: impl Into<Value>) -> &mut Self {
        self.text.push('?');
        self.binds.push(value.into());
        self
    }

    /// Appends `(?, ?, ...)` for an `IN` list. An empty list renders `(NULL)`, which
    /// matches nothing, as SQL has no empty list.
    pub fn bind_list<V: Into<Value>>(&mut self, values: impl IntoIterator<Item = V>) -> &mut Self {
        self.text.push('(');
        let mut first = true;
        for v in values {
            if !first {
                self.text.push_str(", ");
            }
            first = false;
            self.bind(v);
        }
        if first {
            self.text.push_str("NULL");
        }
        self.text.push(')');
        self
    }

    /// The text as the engine wants it: PostgreSQL numbers its placeholders.
    pub fn render(&self, engine: Engine) -> String {
        if engine != Engine::Postgres {
            return self.text.clone();
        }
        let mut out = String::with_capacity(self.text.len() + 8);
        let mut n = 0;
        for c in self.text.chars() {
            if c == '?' {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            } else {
                out.push(c);
            }
        }
        out
    }

    pub(crate) fn bind_all<'q, DB: Binder>(
        &self,
        mut q: Query<'q, DB, DB::Arguments>,
    ) -> Query<'q, DB, DB::Arguments> {
        for v in &self.binds {
            q = DB::bind(q, v.clone());
        }
        q
    }

    pub(crate) fn bind_all_as<'q, DB: Binder, O>(
        &self,
        mut q: QueryAs<'q, DB, O, DB::Arguments>,
    ) -> QueryAs<'q, DB, O, DB::Arguments> {
        for v in &self.binds {
            q = DB::bind_as(q, v.clone());
        }
        q
    }
}

/// How one engine binds a [`Value`].
pub(crate) trait Binder: sqlx::Database {
    fn bind<'q>(q: Query<'q, Self, Self::Arguments>, v: Value) -> Query<'q, Self, Self::Arguments>;
    fn bind_as<'q, O>(
        q: QueryAs<'q, Self, O, Self::Arguments>,
        v: Value,
    ) -> QueryAs<'q, Self, O, Self::Arguments>;
}

macro_rules! binder {
    ($db:ty, $args:ty) => {
        impl Binder for $db {
            fn bind<'q>(q: Query<'q, Self, $args>, v: Value) -> Query<'q, Self, $args> {
                match v {
                    Value::Null(Kind::Text) => q.bind(None::<String>),
                    Value::Null(Kind::Int) => q.bind(None::<i64>),
                    Value::Null(Kind::Bool) => q.bind(None::<bool>),
                    Value::Bool(b) => q.bind(b),
                    Value::Int(i) => q.bind(i),
                    Value::Text(s) => q.bind(s),
                }
            }
            fn bind_as<'q, O>(
                q: QueryAs<'q, Self, O, $args>,
                v: Value,
            ) -> QueryAs<'q, Self, O, $args> {
                match v {
                    Value::Null(Kind::Text) => q.bind(None::<String>),
                    Value::Null(Kind::Int) => q.bind(None::<i64>),
                    Value::Null(Kind::Bool) => q.bind(None::<bool>),
                    Value::Bool(b) => q.bind(b),
                    Value::Int(i) => q.bind(i),
                    Value::Text(s) => q.bind(s),
                }
            }
        }
    };
}

binder!(Sqlite, SqliteArguments);
binder!(Postgres, PgArguments);
binder!(MySql, MySqlArguments);

/// `SUM(expr)` of an integer column as a 64-bit integer on every engine (0 over no rows):
/// PostgreSQL's and MySQL's `SUM` of a `BIGINT` is NUMERIC/DECIMAL, which does not decode
/// as `i64`.
pub fn int_sum(engine: Engine, expr: &str) -> String {
    let target = match engine {
        Engine::MySql => "SIGNED",
        Engine::Postgres | Engine::Sqlite => "BIGINT",
    };
    format!("CAST(COALESCE(SUM({expr}), 0) AS {target})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_placeholders_are_numbered() {
        let mut s = Sql::new("SELECT * FROM t WHERE a = ?");
        s = s.arg("x");
        s.push(" AND b IN ").bind_list([1i64, 2]);
        assert_eq!(
            s.render(Engine::Postgres),
            "SELECT * FROM t WHERE a = $1 AND b IN ($2, $3)"
        );
        assert_eq!(
            s.render(Engine::Sqlite),
            "SELECT * FROM t WHERE a = ? AND b IN (?, ?)"
        );
        assert_eq!(s.binds.len(), 3);
    }

    #[test]
    fn empty_in_list_matches_nothing() {
        let mut s = Sql::new("SELECT 1 WHERE x IN ");
        s.bind_list(Vec::<String>::new());
        assert_eq!(s.render(Engine::MySql), "SELECT 1 WHERE x IN (NULL)");
    }
}
