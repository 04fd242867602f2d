//! Push-to-talk: watches one key on the X11 display, whichever window has the focus (a game,
//! usually), by polling the keyboard state every 10 ms.
//!
//! Under Wayland the compositor keeps other programs' keys private; XWayland shows only keys
//! typed into X11 windows.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::ConnectionExt;
use x11rb::rust_connection::RustConnection;

/// How often the key is looked at.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Key names `--ptt` accepts, with their X keysyms; letters and digits are accepted as
/// themselves, and `F1`…`F24`.
const NAMED_KEYS: &[(&str, u32)] = &[
    ("space", 0x0020),
    ("grave", 0x0060),
    ("Tab", 0xff09),
    ("Escape", 0xff1b),
    ("Caps_Lock", 0xffe5),
    ("Shift_L", 0xffe1),
    ("Shift_R", 0xffe2),
    ("Control_L", 0xffe3),
    ("Control_R", 0xffe4),
    ("Alt_L", 0xffe9),
    ("Alt_R", 0xffea),
    ("Super_L", 0xffeb),
    ("Super_R", 0xffec),
    ("Insert", 0xff63),
    ("Home", 0xff50),
    ("End", 0xff57),
    ("Page_Up", 0xff55),
    ("Page_Down", 0xff56),
];

/// The X keysym a `--ptt` key name stands for.
pub(crate) fn keysym(name: &str) -> Result<u32> {
    if let Some((_, sym)) = NAMED_KEYS
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(name))
    {
        return Ok(*sym);
    }
    let mut chars = name.chars();
    if let (Some(c), None) = (chars.next(), chars.next())
        && c.is_ascii_alphanumeric()
    {
        return Ok(u32::from(c.to_ascii_lowercase()));
    }
    if let Some(number) = name
        .strip_prefix(['F', 'f'])
        .and_then(|n| n.parse::<u32>().ok())
        && (1..=24).contains(&number)
    {
        return Ok(0xffbe + number - 1);
    }
    let known: Vec<&str> = NAMED_KEYS.iter().map(|(name, _)| *name).collect();
    bail!(
        "unknown push-to-talk key \"{name}\"; use a letter, a digit, F1…F24 or one of: {}",
        known.join(", ")
    )
}

/// One key on the X display, watched.
pub(crate) struct KeyWatcher {
    connection: RustConnection,
    keycodes: Vec<u8>,
}

impl KeyWatcher {
    /// Connects to the X display (`DISPLAY`) and finds the keys that produce `name`.
    pub(crate) fn connect(name: &str) -> Result<Self> {
        let sym = keysym(name)?;
        if std::env::var_os("DISPLAY").is_none() {
            bail!(
                "push-to-talk watches the key on the X11 display, but DISPLAY is not set; run \
                 under X11 (or XWayland), or talk with --vad"
            );
        }
        let (connection, _) = x11rb::connect(None)
            .context("cannot open the X11 display for push-to-talk; check DISPLAY, or use --vad")?;
        let setup = connection.setup();
        let (first, last) = (setup.min_keycode, setup.max_keycode);
        let mapping = connection
            .get_keyboard_mapping(first, last - first + 1)?
            .reply()
            .context("reading the X keyboard mapping")?;
        let per_keycode = usize::from(mapping.keysyms_per_keycode.max(1));
        let keycodes: Vec<u8> = mapping
            .keysyms
            .chunks(per_keycode)
            .zip(first..=last)
            .filter(|(syms, _)| syms.contains(&sym))
            .map(|(_, keycode)| keycode)
            .collect();
        if keycodes.is_empty() {
            bail!("no key on this keyboard types \"{name}\"; pick another --ptt key");
        }
        Ok(Self {
            connection,
            keycodes,
        })
    }

    /// Whether the key is down now.
    pub(crate) fn is_held(&self) -> Result<bool> {
        let keymap = self
            .connection
            .query_keymap()?
            .reply()
            .context("reading the keyboard state from X11")?;
        Ok(self.keycodes.iter().any(|keycode| {
            let (byte, bit) = (usize::from(*keycode / 8), keycode % 8);
            keymap.keys[byte] & (1 << bit) != 0
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_map_to_keysyms() {
        assert_eq!(keysym("space").unwrap(), 0x20);
        assert_eq!(keysym("SPACE").unwrap(), 0x20);
        assert_eq!(keysym("v").unwrap(), u32::from(b'v'));
        assert_eq!(keysym("V").unwrap(), u32::from(b'v'));
        assert_eq!(keysym("7").unwrap(), u32::from(b'7'));
        assert_eq!(keysym("F1").unwrap(), 0xffbe);
        assert_eq!(keysym("f13").unwrap(), 0xffca);
        assert_eq!(keysym("Control_R").unwrap(), 0xffe4);
        let error = keysym("F25").unwrap_err().to_string();
        assert!(error.contains("unknown push-to-talk key"), "{error}");
        assert!(keysym("é").is_err());
    }
}
