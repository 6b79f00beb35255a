//! GGUF metadata values.

id_enum! {
    /// The type of a GGUF metadata value.
    pub enum GgufValueType, "id" {
        U8 = 0, "uint8"; I8 = 1, "int8"; U16 = 2, "uint16"; I16 = 3, "int16";
        U32 = 4, "uint32"; I32 = 5, "int32"; F32 = 6, "float32"; Bool = 7, "bool";
        String = 8, "string"; Array = 9, "array";
        U64 = 10, "uint64"; I64 = 11, "int64"; F64 = 12, "float64";
    }
}

/// A GGUF metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum GgufValue {
    /// `uint8`.
    U8(u8),
    /// `int8`.
    I8(i8),
    /// `uint16`.
    U16(u16),
    /// `int16`.
    I16(i16),
    /// `uint32`.
    U32(u32),
    /// `int32`.
    I32(i32),
    /// `float32`.
    F32(f32),
    /// `bool`.
    Bool(bool),
    /// `string` (UTF-8).
    String(String),
    /// `array` of values of one element type.
    Array(GgufValueType, Vec<GgufValue>),
    /// `uint64`.
    U64(u64),
    /// `int64`.
    I64(i64),
    /// `float64`.
    F64(f64),
}

impl GgufValue {
    /// The value's type.
    pub fn value_type(&self) -> GgufValueType {
        match self {
            Self::U8(_) => GgufValueType::U8,
            Self::I8(_) => GgufValueType::I8,
            Self::U16(_) => GgufValueType::U16,
            Self::I16(_) => GgufValueType::I16,
            Self::U32(_) => GgufValueType::U32,
            Self::I32(_) => GgufValueType::I32,
            Self::F32(_) => GgufValueType::F32,
            Self::Bool(_) => GgufValueType::Bool,
            Self::String(_) => GgufValueType::String,
            Self::Array(..) => GgufValueType::Array,
            Self::U64(_) => GgufValueType::U64,
            Self::I64(_) => GgufValueType::I64,
            Self::F64(_) => GgufValueType::F64,
        }
    }

    /// Any integer type holding a non-negative value, as `u64`.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Self::U8(v) => Some(v.into()),
            Self::U16(v) => Some(v.into()),
            Self::U32(v) => Some(v.into()),
            Self::U64(v) => Some(v),
            Self::I8(v) => u64::try_from(v).ok(),
            Self::I16(v) => u64::try_from(v).ok(),
            Self::I32(v) => u64::try_from(v).ok(),
            Self::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Any integer type, as `i64` (`None` for a `uint64` above `i64::MAX`).
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Self::I8(v) => Some(v.into()),
            Self::I16(v) => Some(v.into()),
            Self::I32(v) => Some(v.into()),
            Self::I64(v) => Some(v),
            _ => self.as_u64().and_then(|v| i64::try_from(v).ok()),
        }
    }

    /// Any float or integer type, as `f64` (a `float32` widens exactly).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Self::F32(v) => Some(v.into()),
            Self::F64(v) => Some(v),
            _ => self.as_i64().map(|v| v as f64),
        }
    }

    /// A `bool`.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Self::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// A `string`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    /// The elements of an `array`.
    pub fn as_array(&self) -> Option<&[GgufValue]> {
        match self {
            Self::Array(_, items) => Some(items),
            _ => None,
        }
    }

    /// An `array` of strings, borrowed.
    pub fn as_str_array(&self) -> Option<Vec<&str>> {
        self.as_array()?.iter().map(Self::as_str).collect()
    }

    /// An `array` of integers, as `i64`.
    pub fn as_i64_array(&self) -> Option<Vec<i64>> {
        self.as_array()?.iter().map(Self::as_i64).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(GgufValue::I32(-1).as_u64(), None);
        assert_eq!(GgufValue::I32(7).as_u64(), Some(7));
        assert_eq!(GgufValue::U64(u64::MAX).as_i64(), None);
        assert_eq!(GgufValue::F32(1e-5).as_f64(), Some(f64::from(1e-5f32)));
        assert_eq!(GgufValue::U32(3).as_f64(), Some(3.0));
        assert_eq!(GgufValue::String("x".into()).as_u64(), None);
        let arr = GgufValue::Array(
            GgufValueType::String,
            vec![GgufValue::String("a".into()), GgufValue::String("b".into())],
        );
        assert_eq!(arr.as_str_array(), Some(vec!["a", "b"]));
        assert_eq!(arr.as_i64_array(), None);
        for id in 0..13 {
            assert_eq!(GgufValueType::from_id(id).map(|t| t.id()), Some(id));
        }
        assert_eq!(GgufValueType::from_id(13), None);
    }
}
