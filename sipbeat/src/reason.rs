//! Closed sets of reasons, each variant a counter label.
//!
//! Everything sipbeat drops, skips or rejects has a reason; stats count them
//! by variant and the summary prints their names. [`crate::reasons!`] declares such
//! an enum once with its labels, so names never drift from variants.

/// Declares a `Copy` enum of reasons with `ALL`, `COUNT`, `label()` and `Display`.
#[macro_export]
macro_rules! reasons {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $label:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every reason, in declaration order (the index of a counter).
            pub const ALL: &'static [$name] = &[ $( $name::$variant, )+ ];
            /// Number of reasons.
            pub const COUNT: usize = Self::ALL.len();

            /// The reason's label in stats and logs (`snake_case`).
            pub const fn label(self) -> &'static str {
                match self {
                    $( $name::$variant => $label, )+
                }
            }

            /// The reason's counter index.
            pub const fn index(self) -> usize {
                self as usize
            }
        }

        impl ::core::fmt::Display for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(self.label())
            }
        }

        impl ::std::error::Error for $name {}
    };
}
