//! Names of the option enums, one table each: `FromStr` and `Display` for the command line,
//! the same names serde uses in TOML (a test checks they agree).

/// Implements `NAMES`, `name()`, `Display` and `FromStr` (the error lists the choices) from one
/// table of `Variant => "name"`.
macro_rules! named_choices {
    ($ty:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// Every choice's name, as in TOML and on the command line.
            pub const NAMES: &'static [&'static str] = &[$($name),+];

            /// This choice's name.
            pub fn name(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = String;

            fn from_str(s: &str) -> std::result::Result<Self, String> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    other => Err(format!("`{other}` is not one of {}", Self::NAMES.join(", "))),
                }
            }
        }
    };
}

pub(crate) use named_choices;
