//! Private helper macros.

/// Declares a wire newtype over an integer with named constants that keep unknown values.
///
/// Generates the struct (`pub` inner field), the constants, `name()`, `Debug` (the constant's
/// path or the hex value), `Display` (the name or the hex value) and conversions to and from
/// the inner integer. Constants must have distinct values (the `name()` match needs that).
macro_rules! wire_newtype {
    (
        $(#[$meta:meta])*
        pub struct $name:ident($inner:ty);
        $(
            $(#[$cmeta:meta])*
            $cname:ident = $val:expr;
        )*
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub $inner);

        impl $name {
            $(
                $(#[$cmeta])*
                pub const $cname: Self = Self($val);
            )*

            /// The spec name of this value, or `None` when it is not one this crate knows.
            pub const fn name(self) -> Option<&'static str> {
                match self {
                    $( Self::$cname => Some(stringify!($cname)), )*
                    _ => None,
                }
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                match self.name() {
                    Some(name) => write!(f, "{}::{}", stringify!($name), name),
                    None => write!(
                        f,
                        "{}({:#0width$x})",
                        stringify!($name),
                        self.0,
                        width = 2 + 2 * core::mem::size_of::<$inner>()
                    ),
                }
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                match self.name() {
                    Some(name) => f.write_str(name),
                    None => write!(
                        f,
                        "{:#0width$x}",
                        self.0,
                        width = 2 + 2 * core::mem::size_of::<$inner>()
                    ),
                }
            }
        }

        impl From<$inner> for $name {
            fn from(value: $inner) -> Self {
                Self(value)
            }
        }

        impl From<$name> for $inner {
            fn from(value: $name) -> Self {
                value.0
            }
        }
    };
}
