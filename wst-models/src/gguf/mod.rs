//! GGUF model files (llama.cpp's format): a bounds-checked reader, dequantisation of the common
//! ggml types, and conversion to the Hugging Face layout (config, tensor names and shapes,
//! `tokenizer.json`, chat template), so that one model code path serves both formats.
//!
//! Conversion follows transformers' GGUF loader: tensors are dequantised to `f32`, renamed by
//! a table per architecture ([`ARCHITECTURES`]), and llama's Q/K rows (permuted by llama.cpp
//! for interleaved rotary embedding) are put back in transformers' half-split order.

/// A `u32`-coded enum of the format (`$what` names its ids in the variants' docs), with
/// `from_id`, `id` and `name` from one table `Variant = id, "name";`. Further impls add columns.
macro_rules! id_enum {
    (
        $(#[$meta:meta])*
        pub enum $ty:ident, $what:literal {
            $($variant:ident = $id:literal, $name:literal;)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $ty {
            $(
                #[doc = concat!("`", $name, "` (", $what, " ", $id, ").")]
                $variant,
            )*
        }

        impl $ty {
            #[doc = concat!("The type with this ", $what, ", if known.")]
            pub fn from_id(id: u32) -> Option<Self> {
                match id {
                    $($id => Some(Self::$variant),)*
                    _ => None,
                }
            }

            #[doc = concat!("The ", $what, " of the type.")]
            pub fn id(self) -> u32 {
                match self { $(Self::$variant => $id,)* }
            }

            /// The name the format gives the type (`"uint32"`, `"Q4_K"`).
            pub fn name(self) -> &'static str {
                match self { $(Self::$variant => $name,)* }
            }
        }
    };
}

mod convert;
mod dequant;
mod error;
mod model;
mod reader;
mod tokenizer;
mod value;
mod writer;

pub use convert::{
    arch_spec, hf_config, hf_tensor_name, permute_rows, reverse_permute_rows, ArchSpec, FixedValue,
    QkRole, ARCHITECTURES,
};
pub use dequant::{dequantize, dequantize_into, GgmlType};
pub use error::{GgufError, Result};
pub use model::{load_gguf, GgufModel};
pub use reader::{GgufFile, TensorInfo, DEFAULT_ALIGNMENT};
pub use tokenizer::tokenizer_json;
pub use value::{GgufValue, GgufValueType};
pub use writer::GgufBuilder;
