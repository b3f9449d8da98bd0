//! The values that cross the one SQL interface: what a statement binds ([`Arg`],
//! [`Params`], `params!`) and what a row reads back ([`Row`], [`FromVal`]), converted
//! leniently between SQLite's dynamic types and PostgreSQL's.

use super::{DbError, DbResult};

/// A value bound to or read from a statement.
#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<&str> for Val {
    fn from(s: &str) -> Val {
        Val::Text(s.to_string())
    }
}

impl From<String> for Val {
    fn from(s: String) -> Val {
        Val::Text(s)
    }
}

/// Anything that binds as a statement parameter.
pub trait Arg {
    fn val(&self) -> Val;
}

macro_rules! int_arg {
    ($($t:ty),*) => {$(
        impl Arg for $t {
            fn val(&self) -> Val {
                Val::Int(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
    )*};
}
int_arg!(i64, i32, u32, u64, usize, u16, u8);

impl Arg for bool {
    fn val(&self) -> Val {
        Val::Int(i64::from(*self))
    }
}
impl Arg for f64 {
    fn val(&self) -> Val {
        Val::Real(*self)
    }
}
impl Arg for str {
    fn val(&self) -> Val {
        Val::Text(self.to_string())
    }
}
impl Arg for String {
    fn val(&self) -> Val {
        Val::Text(self.clone())
    }
}
impl Arg for [u8] {
    fn val(&self) -> Val {
        Val::Blob(self.to_vec())
    }
}
impl Arg for Vec<u8> {
    fn val(&self) -> Val {
        Val::Blob(self.clone())
    }
}
impl Arg for Val {
    fn val(&self) -> Val {
        self.clone()
    }
}
impl<T: Arg> Arg for Option<T> {
    fn val(&self) -> Val {
        self.as_ref().map_or(Val::Null, Arg::val)
    }
}
impl<T: Arg + ?Sized> Arg for &T {
    fn val(&self) -> Val {
        (**self).val()
    }
}

/// The parameters of one statement: `params![a, b]`, an array of one type, or a slice of
/// `&dyn Arg`.
pub trait Params {
    fn vals(self) -> Vec<Val>;
}
impl Params for &[&dyn Arg] {
    fn vals(self) -> Vec<Val> {
        self.iter().map(|a| a.val()).collect()
    }
}
impl<const N: usize> Params for &[&dyn Arg; N] {
    fn vals(self) -> Vec<Val> {
        self.iter().map(|a| a.val()).collect()
    }
}
impl<T: Arg, const N: usize> Params for [T; N] {
    fn vals(self) -> Vec<Val> {
        self.iter().map(Arg::val).collect()
    }
}
impl Params for Vec<Val> {
    fn vals(self) -> Vec<Val> {
        self
    }
}

/// `params![a, b, c]`: parameters of different types, rusqlite-style.
macro_rules! params {
    () => {
        &[] as &[&dyn $crate::db::Arg]
    };
    ($($x:expr),+ $(,)?) => {
        &[$(&$x as &dyn $crate::db::Arg),+] as &[&dyn $crate::db::Arg]
    };
}
pub(crate) use params;

/// A column index (`r.get(0)`).
pub trait ColIndex {
    fn index(self) -> usize;
}
impl ColIndex for usize {
    fn index(self) -> usize {
        self
    }
}
impl ColIndex for i32 {
    fn index(self) -> usize {
        usize::try_from(self).unwrap_or(usize::MAX)
    }
}

/// A type a column converts to.
pub trait FromVal: Sized {
    fn from_val(v: Val) -> Result<Self, String>;
}
impl FromVal for Val {
    fn from_val(v: Val) -> Result<Self, String> {
        Ok(v)
    }
}
impl FromVal for i64 {
    fn from_val(v: Val) -> Result<Self, String> {
        match v {
            Val::Int(i) => Ok(i),
            Val::Real(f) if f.fract() == 0.0 && f.abs() < 9.0e18 => Ok(f as i64),
            other => Err(format!("expected an integer, found {other:?}")),
        }
    }
}
macro_rules! narrow_int {
    ($($t:ty),*) => {$(
        impl FromVal for $t {
            fn from_val(v: Val) -> Result<Self, String> {
                let i = i64::from_val(v)?;
                <$t>::try_from(i).map_err(|_| format!("{i} is out of range"))
            }
        }
    )*};
}
narrow_int!(i32, u32, u64, usize, u16, u8);
impl FromVal for bool {
    fn from_val(v: Val) -> Result<Self, String> {
        Ok(i64::from_val(v)? != 0)
    }
}
impl FromVal for f64 {
    fn from_val(v: Val) -> Result<Self, String> {
        match v {
            Val::Real(f) => Ok(f),
            Val::Int(i) => Ok(i as f64),
            other => Err(format!("expected a number, found {other:?}")),
        }
    }
}
impl FromVal for String {
    fn from_val(v: Val) -> Result<Self, String> {
        match v {
            Val::Text(s) => Ok(s),
            other => Err(format!("expected text, found {other:?}")),
        }
    }
}
impl FromVal for Vec<u8> {
    fn from_val(v: Val) -> Result<Self, String> {
        match v {
            Val::Blob(b) => Ok(b),
            Val::Text(s) => Ok(s.into_bytes()),
            other => Err(format!("expected bytes, found {other:?}")),
        }
    }
}
impl<T: FromVal> FromVal for Option<T> {
    fn from_val(v: Val) -> Result<Self, String> {
        match v {
            Val::Null => Ok(None),
            v => T::from_val(v).map(Some),
        }
    }
}

/// One row, read whole.
pub struct Row {
    pub(super) vals: Vec<Val>,
}

impl Row {
    pub fn get<I: ColIndex, T: FromVal>(&self, i: I) -> DbResult<T> {
        let index = i.index();
        let v = self.vals.get(index).cloned().ok_or(DbError::Type { index, message: "no such column".into() })?;
        T::from_val(v).map_err(|message| DbError::Type { index, message })
    }
}
