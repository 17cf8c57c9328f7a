//! Sizes on the command line and on screen: `256K`, `1M`, `4MiB` in, `1.5 MiB` out.
//!
//! Units are binary (K = KiB = 1024), as mktorrent and transmission-create read them; `KB`
//! and `MB` are accepted as the same binary units, since that is what people mean for piece
//! sizes.

use anyhow::bail;

/// Parses a byte count: digits, optionally followed by K, M, G (with optional `i`, `B`),
/// any case: `16384`, `256K`, `256k`, `1M`, `4MiB`, `2MB`.
pub fn parse_size(text: &str) -> anyhow::Result<u64> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    if digits.is_empty() {
        bail!("size {text:?} must start with a number (e.g. 256K, 1M, 4MiB or 16384)");
    }
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => bail!("size {text:?} has an unknown unit {unit:?} (use K, M or G, e.g. 256K, 4MiB)"),
    };
    let number: u64 = digits.parse()?;
    match number.checked_mul(1u64 << shift) {
        Some(bytes) => Ok(bytes),
        None => bail!("size {text:?} is too large"),
    }
}

/// `1536` → `1.50 KiB`; plain bytes below 1 KiB.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.2} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_binary_units() {
        assert_eq!(parse_size("16384").unwrap(), 16384);
        assert_eq!(parse_size("256K").unwrap(), 256 * 1024);
        assert_eq!(parse_size("256k").unwrap(), 256 * 1024);
        assert_eq!(parse_size("1M").unwrap(), 1 << 20);
        assert_eq!(parse_size("4MiB").unwrap(), 4 << 20);
        assert_eq!(parse_size("2MB").unwrap(), 2 << 20);
        assert_eq!(parse_size("1g").unwrap(), 1 << 30);
    }

    #[test]
    fn bad_sizes_are_clear_errors() {
        for bad in [
            "",
            "K",
            "1.5M",
            "12X",
            "-1",
            "99999999999999999999",
            "17179869184G",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
        assert!(parse_size("12X")
            .unwrap_err()
            .to_string()
            .contains("unknown unit"));
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.50 KiB");
        assert_eq!(human_size(2 << 30), "2.00 GiB");
    }
}
