//! Human units in the config file: durations (`90s`, `30m`), byte sizes
//! (`2GiB`, `500MiB`) and thresholds that are either an absolute amount or a
//! share of the whole (`10%`).

use serde::{de, Deserialize, Deserializer};
use std::fmt;
use std::time::Duration;

/// A duration written as `90s`, `5m`, `1h 30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub fn parse(text: &str) -> Result<Self, String> {
        match humantime::parse_duration(text.trim()) {
            Ok(d) => Ok(Self(d)),
            Err(_) => Err(format!(
                "`{text}` is not a duration; write a number and a unit, such as \"90s\", \"5m\" or \"1h 30m\""
            )),
        }
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(de::Error::custom)
    }
}

/// How much free space (or how many free inodes) a filesystem must keep:
/// an absolute amount, or a percentage of the filesystem's size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Amount {
    Absolute(u64),
    Percent(f64),
}

impl Amount {
    /// The amount in absolute units for a filesystem of `total` units.
    pub fn resolve(self, total: u64) -> u64 {
        match self {
            Amount::Absolute(n) => n,
            Amount::Percent(p) => ((total as f64) * p / 100.0).ceil() as u64,
        }
    }

    fn parse_percent(text: &str) -> Option<Result<Self, String>> {
        let number = text.trim().strip_suffix('%')?;
        Some(match number.trim().parse::<f64>() {
            Ok(p) if (0.0..=100.0).contains(&p) => Ok(Amount::Percent(p)),
            _ => Err(format!(
                "`{text}` is not a percentage between 0% and 100%; write it like \"10%\""
            )),
        })
    }

    /// A byte amount: `2GiB`, `500MiB`, `1.5G`, or a percentage.
    pub fn parse_bytes(text: &str) -> Result<Self, String> {
        if let Some(p) = Self::parse_percent(text) {
            return p;
        }
        text.trim()
            .parse::<bytesize::ByteSize>()
            .map(|b| Amount::Absolute(b.as_u64()))
            .map_err(|_| {
                format!(
                    "`{text}` is not a size; write a number and a unit, such as \"500MiB\", \"2GiB\", or a percentage such as \"10%\""
                )
            })
    }

    /// A count (of inodes): `100000`, or a percentage.
    pub fn parse_count(text: &str) -> Result<Self, String> {
        if let Some(p) = Self::parse_percent(text) {
            return p;
        }
        text.trim()
            .replace('_', "")
            .parse::<u64>()
            .map(Amount::Absolute)
            .map_err(|_| {
                format!("`{text}` is not a count; write a whole number such as \"100000\", or a percentage such as \"5%\"")
            })
    }
}

/// A byte threshold as written in the config (`"2GiB"` or `"10%"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ByteAmount(pub Amount);

impl<'de> Deserialize<'de> for ByteAmount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Amount::parse_bytes(&text)
            .map(ByteAmount)
            .map_err(de::Error::custom)
    }
}

impl fmt::Display for ByteAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Amount::Absolute(n) => write!(f, "{}", format_bytes(n)),
            Amount::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// An inode threshold as written in the config (`100000`, `"100000"` or `"5%"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CountAmount(pub Amount);

impl<'de> Deserialize<'de> for CountAmount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = CountAmount;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a whole number of inodes or a percentage such as \"5%\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<CountAmount, E> {
                u64::try_from(v)
                    .map(|n| CountAmount(Amount::Absolute(n)))
                    .map_err(|_| E::custom("an inode count cannot be negative"))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<CountAmount, E> {
                Ok(CountAmount(Amount::Absolute(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CountAmount, E> {
                Amount::parse_count(v).map(CountAmount).map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl fmt::Display for CountAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Amount::Absolute(n) => write!(f, "{n}"),
            Amount::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// Bytes the way people read them on a disk report: `1.5 GiB`.
pub fn format_bytes(n: u64) -> String {
    bytesize::ByteSize(n).display().iec().to_string()
}

/// A count with a metric suffix: `15.2M inodes`.
pub fn format_count(n: u64) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=999_999 => format!("{:.1}k", n as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.1}M", n as f64 / 1e6),
        _ => format!("{:.1}G", n as f64 / 1e9),
    }
}

/// A duration rounded for a sentence: `3m 12s`, `2h 5m`, `4d 1h`.
pub fn format_age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
    }
}

// Written as the config file writes them, so `config show` prints values
// that can be pasted back into a file.
impl serde::Serialize for ByteAmount {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl serde::Serialize for CountAmount {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Amount::Absolute(n) => s.serialize_u64(n),
            Amount::Percent(_) => s.collect_str(self),
        }
    }
}

/// Serializes a duration as the config writes it ("5m", "1h 30m").
pub fn serialize_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_duration(*d))
}

/// Serializes a list of durations as the config writes them.
pub fn serialize_durations<S: serde::Serializer>(
    list: &[Duration],
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(list.len()))?;
    for d in list {
        seq.serialize_element(&humantime::format_duration(*d).to_string())?;
    }
    seq.end()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_human_units() {
        assert_eq!(
            HumanDuration::parse("90s").unwrap().0,
            Duration::from_secs(90)
        );
        assert_eq!(
            HumanDuration::parse("1h 30m").unwrap().0,
            Duration::from_secs(5400)
        );
        let err = HumanDuration::parse("90x").unwrap_err();
        assert!(err.contains("\"90s\""), "{err}");
        assert!(HumanDuration::parse("").is_err());
    }

    #[test]
    fn sizes_and_percentages() {
        assert_eq!(
            Amount::parse_bytes("2GiB").unwrap(),
            Amount::Absolute(2 << 30)
        );
        assert_eq!(
            Amount::parse_bytes("500MiB").unwrap(),
            Amount::Absolute(500 << 20)
        );
        assert_eq!(Amount::parse_bytes("10%").unwrap(), Amount::Percent(10.0));
        assert!(Amount::parse_bytes("120%")
            .unwrap_err()
            .contains("between 0% and 100%"));
        assert!(Amount::parse_bytes("lots")
            .unwrap_err()
            .contains("\"2GiB\""));
        assert_eq!(
            Amount::parse_count("100_000").unwrap(),
            Amount::Absolute(100_000)
        );
        assert!(Amount::parse_count("1GiB").is_err());
    }

    #[test]
    fn percent_resolves_against_total() {
        assert_eq!(Amount::Percent(10.0).resolve(1000), 100);
        assert_eq!(Amount::Percent(2.5).resolve(1000), 25);
        assert_eq!(Amount::Absolute(7).resolve(1000), 7);
    }

    #[test]
    fn readable_figures() {
        assert_eq!(format_bytes(3 << 30), "3.0 GiB");
        assert_eq!(format_count(15_200_000), "15.2M");
        assert_eq!(format_age(Duration::from_secs(192)), "3m 12s");
        assert_eq!(format_age(Duration::from_secs(7500)), "2h 5m");
    }
}
