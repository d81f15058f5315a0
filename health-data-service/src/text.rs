//! The health data's text limits; the rule itself (no NUL, no C0 control but tab, bounded length)
//! is `common::text`'s, shared by every service. Garmin's own files are cleaned instead of
//! refused ([`strip_controls`]): their owner cannot edit them.

/// The longest value of a free-text query parameter or action parameter (a search, a name).
pub const MAX_PARAM_CHARS: usize = 200;
/// The longest `cursor`: opaque, written by the service (a name and an id, base64).
pub const MAX_CURSOR_CHARS: usize = 2000;
/// The longest cell of a CSV import, whatever its column.
pub const MAX_CELL_CHARS: usize = 1000;
/// The longest name: a blood marker, a lab, a panel, a fighter, a nickname, an event, a place.
pub const MAX_NAME_CHARS: usize = 200;
/// The longest label: a category, a division or weight class, a stance, a country, a method.
pub const MAX_LABEL_CHARS: usize = 100;

pub use common::text::{check, has_controls, strip_controls};
