//! `wire_enum!`: a `u32` newtype with named constants that keeps unknown values.
//!
//! The rustls pattern: `pub struct UsbfnEvent(pub u32)` with `pub const ATTACH: Self = Self(1)`.
//! Any `u32` is a value of the type (a newer Windows, or a peer, may send values this crate does
//! not know); `name()` returns the Windows name of known values, and `Debug`/`Display` print that
//! name or `Type(0x...)`. Nothing is ever transmuted.

/// Declares a `u32` newtype with named constants. Start the body with
/// `@const_is_windows_name` when the constant names already are the Windows names.
///
/// ```text
/// wire_enum! {
///     /// docs
///     pub struct Thing(u32) {
///         /// docs
///         ONE = 1 => "WindowsNameOne",
///     }
///     aliases {
///         /// docs
///         UNO = ONE,
///     }
/// }
/// ```
macro_rules! wire_enum {
    // Constants named exactly like their Windows names (`NtStatus::STATUS_SUCCESS`): no alias.
    (
        @const_is_windows_name
        $(#[$meta:meta])*
        pub struct $name:ident(u32) {
            $(
                $(#[$cmeta:meta])*
                $konst:ident = $value:expr => $wname:literal,
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        #[repr(transparent)]
        pub struct $name(pub u32);

        impl $name {
            $(
                $(#[$cmeta])*
                pub const $konst: Self = Self($value);
            )*
        }

        $crate::macros::wire_enum!(@common $name [$($konst => $wname),*]);
    };

    // Short constant names (`UsbfnEvent::ATTACH`) with the Windows name as a doc alias.
    (
        $(#[$meta:meta])*
        pub struct $name:ident(u32) {
            $(
                $(#[$cmeta:meta])*
                $konst:ident = $value:expr => $wname:literal,
            )*
        }
        $(
            aliases {
                $(
                    $(#[$ameta:meta])*
                    $alias:ident = $target:ident,
                )*
            }
        )?
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        #[repr(transparent)]
        pub struct $name(pub u32);

        impl $name {
            $(
                $(#[$cmeta])*
                #[doc(alias = $wname)]
                pub const $konst: Self = Self($value);
            )*
            $($(
                $(#[$ameta])*
                pub const $alias: Self = Self::$target;
            )*)?
        }

        $crate::macros::wire_enum!(@common $name [$($konst => $wname),*]);
    };

    (@common $name:ident [$($konst:ident => $wname:literal),*]) => {
        impl $name {
            /// Every named value, in declaration order (aliases not repeated).
            pub const KNOWN: &'static [Self] = &[$(Self::$konst),*];

            /// The Windows name of this value, or `None` for a value this crate does not know.
            #[must_use]
            pub const fn name(self) -> Option<&'static str> {
                match self {
                    $(Self::$konst => Some($wname),)*
                    _ => None,
                }
            }

            /// `true` when [`name`](Self::name) knows this value.
            #[must_use]
            pub const fn is_known(self) -> bool {
                self.name().is_some()
            }

            /// The value as it travels: a little-endian `u32`.
            #[must_use]
            pub const fn to_le_bytes(self) -> [u8; 4] {
                self.0.to_le_bytes()
            }

            /// The value from its little-endian bytes.
            #[must_use]
            pub const fn from_le_bytes(bytes: [u8; 4]) -> Self {
                Self(u32::from_le_bytes(bytes))
            }
        }

        impl ::core::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                match self.name() {
                    Some(name) => f.write_str(name),
                    None => write!(f, concat!(stringify!($name), "({:#010x})"), self.0),
                }
            }
        }

        impl ::core::fmt::Display for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                ::core::fmt::Debug::fmt(self, f)
            }
        }

        impl From<u32> for $name {
            fn from(value: u32) -> Self {
                Self(value)
            }
        }

        impl From<$name> for u32 {
            fn from(value: $name) -> Self {
                value.0
            }
        }
    };
}

pub(crate) use wire_enum;
