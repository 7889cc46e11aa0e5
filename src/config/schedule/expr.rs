//! Maintenance-window schedule expressions, as SSM accepts them:
//! `cron(minutes hours day-of-month month day-of-week year)`,
//! `rate(N minute|minutes|hour|hours|day|days)` and
//! `at(yyyy-mm-ddThh:mm:ss)`.
//!
//! The model: a cron expression is a set of local dates (month, year and
//! either day-of-month or day-of-week, the other being `?`) and a set of
//! local times of day; its instants are those date-times in the window's
//! time zone, in order. Day-of-week counts 1 = SUN … 7 = SAT. Dates are
//! walked day by day, so a day that does not exist (31 April, 29 February
//! of a common year) is never produced and never rolls into the next month.
//!
//! Daylight saving: a local time that does not exist (inside a spring-forward
//! gap) starts at the same offset from the gap's start after the clocks
//! move (02:30 in a 02:00→03:00 gap runs at 03:30); a local time that
//! happens twice (autumn) runs at its first occurrence. Both are jiff's
//! "compatible" disambiguation, which is RFC 5545's rule.
//!
//! Everything here is a pure function of its inputs: no clock is read.

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use std::fmt;

/// A parsed schedule expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    Cron(Cron),
    /// Every so many seconds from an anchor.
    Rate {
        seconds: i64,
        text: String,
    },
    /// Once, at a local date-time.
    At(DateTime),
}

/// Why an expression was refused: the field (when there is one) and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleError {
    pub field: Option<&'static str>,
    pub message: String,
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field {
            Some(field) => write!(f, "{field}: {}", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

impl std::error::Error for ScheduleError {}

fn err(field: Option<&'static str>, message: impl Into<String>) -> ScheduleError {
    ScheduleError {
        field,
        message: message.into(),
    }
}

/// The day-of-month field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DayOfMonth {
    Any,
    Days(Vec<bool>),
    /// `L`: the last day of the month.
    Last,
    /// `15W`: the weekday nearest the 15th, within the month.
    NearestWeekday(u8),
    /// `LW`: the last weekday of the month.
    LastWeekday,
}

/// The day-of-week field (1 = SUN … 7 = SAT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DayOfWeek {
    Any,
    Days(Vec<bool>),
    /// `SUNL`, `1L`: the last such day of the month.
    Last(u8),
    /// `SUN#2`: the nth such day of the month.
    Nth(u8, u8),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: Vec<u8>,
    hours: Vec<u8>,
    day_of_month: DayOfMonth,
    months: Vec<bool>,
    day_of_week: DayOfWeek,
    /// `None`: every year.
    years: Option<Vec<bool>>,
    pub text: String,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const FIRST_YEAR: i32 = 1970;
const LAST_YEAR: i32 = 2199;

impl Schedule {
    pub fn parse(text: &str) -> Result<Schedule, ScheduleError> {
        let text = text.trim();
        let inner = |prefix: &str| text.strip_prefix(prefix).and_then(|r| r.strip_suffix(')'));
        if let Some(body) = inner("cron(") {
            return Cron::parse(body, text).map(Schedule::Cron);
        }
        if let Some(body) = inner("rate(") {
            return parse_rate(body, text);
        }
        if let Some(body) = inner("at(") {
            let dt: DateTime = body.trim().parse().map_err(|_| {
                err(None, format!("`{body}` is not a date and time; write at(yyyy-mm-ddThh:mm:ss), such as at(2026-12-13T02:00:00)"))
            })?;
            return Ok(Schedule::At(dt));
        }
        Err(err(None, format!("`{text}` is not a schedule; write cron(…), rate(…) or at(…), such as cron(0 2 ? * SUN#2 *)")))
    }

    /// The expression as written (normalised for `at(…)`).
    pub fn text(&self) -> String {
        match self {
            Schedule::Cron(c) => c.text.clone(),
            Schedule::Rate { text, .. } => text.clone(),
            Schedule::At(dt) => format!("at({dt})"),
        }
    }

    pub fn is_cron(&self) -> bool {
        matches!(self, Schedule::Cron(_))
    }
}

fn parse_rate(body: &str, text: &str) -> Result<Schedule, ScheduleError> {
    let mut parts = body.split_whitespace();
    let (Some(n), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(err(
            None,
            format!("`{text}` needs a number and a unit, such as rate(30 minutes)"),
        ));
    };
    let n: i64 = n.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
        err(
            None,
            format!("`{n}` in `{text}` is not a whole number above zero"),
        )
    })?;
    let unit_seconds = match (unit, n) {
        ("minute", 1) | ("minutes", 2..) => 60,
        ("hour", 1) | ("hours", 2..) => 3600,
        ("day", 1) | ("days", 2..) => 86_400,
        ("minutes" | "hours" | "days", 1) => {
            return Err(err(
                None,
                format!(
                    "write rate(1 {}), in the singular",
                    unit.trim_end_matches('s')
                ),
            ))
        }
        ("minute" | "hour" | "day", _) => {
            return Err(err(None, format!("write rate({n} {unit}s), in the plural")))
        }
        _ => {
            return Err(err(
                None,
                format!("`{unit}` is not a unit; use minute(s), hour(s) or day(s)"),
            ))
        }
    };
    Ok(Schedule::Rate {
        seconds: n * unit_seconds,
        text: text.to_string(),
    })
}

/// Parses one numeric or named value of a field.
fn value(
    token: &str,
    field: &'static str,
    lo: u32,
    hi: u32,
    names: &[&str],
) -> Result<u32, ScheduleError> {
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(token)) {
        return Ok(i as u32 + 1);
    }
    let n: u32 = token.parse().map_err(|_| {
        let named = if names.is_empty() {
            String::new()
        } else {
            format!(" or a name ({}–{})", names[0], names[names.len() - 1])
        };
        err(
            Some(field),
            format!("`{token}` is not a number from {lo} to {hi}{named}"),
        )
    })?;
    if n < lo || n > hi {
        return Err(err(
            Some(field),
            format!("`{token}` is out of range: write {lo} to {hi}"),
        ));
    }
    Ok(n)
}

/// `*`, `a`, `a-b`, `a/s`, `a-b/s`, `*/s`, and lists of them → a set over lo..=hi.
fn set(
    spec: &str,
    field: &'static str,
    lo: u32,
    hi: u32,
    names: &[&str],
) -> Result<Vec<bool>, ScheduleError> {
    let mut on = vec![false; hi as usize + 1];
    for part in spec.split(',') {
        if part.is_empty() {
            return Err(err(Some(field), format!("`{spec}` has an empty list item")));
        }
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                    err(
                        Some(field),
                        format!("`{s}` in `{part}` is not a step above zero"),
                    )
                })?;
                (r, step)
            }
            None => (part, 1),
        };
        let (start, end) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (
                value(a, field, lo, hi, names)?,
                value(b, field, lo, hi, names)?,
            );
            if a > b {
                return Err(err(
                    Some(field),
                    format!("`{range}` runs backwards; write the smaller value first"),
                ));
            }
            (a, b)
        } else {
            let a = value(range, field, lo, hi, names)?;
            // `5/15` means from 5 to the end, every 15.
            (a, if part.contains('/') { hi } else { a })
        };
        let mut v = start;
        while v <= end {
            on[v as usize] = true;
            v += step;
        }
    }
    Ok(on)
}

fn listed(on: &[bool]) -> Vec<u8> {
    on.iter()
        .enumerate()
        .filter(|(_, b)| **b)
        .map(|(i, _)| i as u8)
        .collect()
}

impl Cron {
    fn parse(body: &str, text: &str) -> Result<Cron, ScheduleError> {
        let fields: Vec<&str> = body.split_whitespace().collect();
        if fields.len() != 6 {
            return Err(err(
                None,
                format!("`{text}` has {} fields; a cron expression has six: minutes hours day-of-month month day-of-week year, such as cron(0 2 ? * SUN#2 *)", fields.len()),
            ));
        }
        let minutes = listed(&set(fields[0], "minutes", 0, 59, &[])?);
        let hours = listed(&set(fields[1], "hours", 0, 23, &[])?);
        let (dom, dow) = (fields[2], fields[4]);
        match (dom == "?", dow == "?") {
            (false, false) => {
                return Err(err(Some("day-of-month"), "one of day-of-month and day-of-week must be `?`; write `?` in the one you do not use"))
            }
            (true, true) => return Err(err(Some("day-of-week"), "day-of-month and day-of-week cannot both be `?`")),
            _ => {}
        }
        let day_of_month = if dom == "?" {
            DayOfMonth::Any
        } else if dom.eq_ignore_ascii_case("L") {
            DayOfMonth::Last
        } else if dom.eq_ignore_ascii_case("LW") {
            DayOfMonth::LastWeekday
        } else if let Some(day) = dom.strip_suffix('W').or_else(|| dom.strip_suffix('w')) {
            DayOfMonth::NearestWeekday(value(day, "day-of-month", 1, 31, &[])? as u8)
        } else {
            DayOfMonth::Days(set(dom, "day-of-month", 1, 31, &[])?)
        };
        let months = set(fields[3], "month", 1, 12, &MONTHS)?;
        let day_of_week = if dow == "?" {
            DayOfWeek::Any
        } else if let Some((day, nth)) = dow.split_once('#') {
            let day = value(day, "day-of-week", 1, 7, &DAYS)? as u8;
            let nth: u8 = nth
                .parse()
                .ok()
                .filter(|n| (1..=5).contains(n))
                .ok_or_else(|| err(Some("day-of-week"), format!("`#{nth}` must be #1 to #5")))?;
            DayOfWeek::Nth(day, nth)
        } else if let Some(day) = dow
            .strip_suffix('L')
            .or_else(|| dow.strip_suffix('l'))
            .filter(|d| !d.is_empty())
        {
            DayOfWeek::Last(value(day, "day-of-week", 1, 7, &DAYS)? as u8)
        } else {
            DayOfWeek::Days(set(dow, "day-of-week", 1, 7, &DAYS)?)
        };
        let years = if fields[5] == "*" {
            None
        } else {
            let on = set(fields[5], "year", FIRST_YEAR as u32, LAST_YEAR as u32, &[])?;
            Some(on)
        };
        if minutes.is_empty() || hours.is_empty() {
            return Err(err(
                Some("minutes"),
                "the expression selects no time of day",
            ));
        }
        Ok(Cron {
            minutes,
            hours,
            day_of_month,
            months,
            day_of_week,
            years,
            text: text.to_string(),
        })
    }

    fn date_matches(&self, d: Date) -> bool {
        if let Some(years) = &self.years {
            if !years.get(d.year() as usize).copied().unwrap_or(false) {
                return false;
            }
        }
        if !self.months[d.month() as usize] {
            return false;
        }
        let last_day = d.days_in_month();
        let dom_ok = match &self.day_of_month {
            DayOfMonth::Any => true,
            DayOfMonth::Days(on) => on[d.day() as usize],
            DayOfMonth::Last => d.day() == last_day,
            DayOfMonth::NearestWeekday(target) => nearest_weekday(d, *target) == Some(d.day()),
            DayOfMonth::LastWeekday => {
                let mut last = d.last_of_month();
                while is_weekend(last) {
                    last = last.yesterday().expect("inside the month");
                }
                last.day() == d.day()
            }
        };
        let weekday = d.weekday().to_sunday_one_offset() as u8;
        let dow_ok = match &self.day_of_week {
            DayOfWeek::Any => true,
            DayOfWeek::Days(on) => on[weekday as usize],
            DayOfWeek::Last(day) => weekday == *day && d.day() + 7 > last_day,
            DayOfWeek::Nth(day, nth) => weekday == *day && (d.day() - 1) / 7 + 1 == *nth as i8,
        };
        dom_ok && dow_ok
    }
}

fn is_weekend(d: Date) -> bool {
    matches!(
        d.weekday(),
        jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday
    )
}

/// The weekday nearest the `target` day of `d`'s month, never leaving the
/// month (`1W` on a Saturday is the Monday after, not the Friday before).
fn nearest_weekday(d: Date, target: u8) -> Option<i8> {
    let last = d.days_in_month();
    if target as i8 > last {
        return None;
    }
    let t = d
        .first_of_month()
        .checked_add((target as i64 - 1).days())
        .ok()?;
    let day = match t.weekday() {
        jiff::civil::Weekday::Saturday => {
            if t.day() == 1 {
                t.day() + 2
            } else {
                t.day() - 1
            }
        }
        jiff::civil::Weekday::Sunday => {
            if t.day() == last {
                t.day() - 2
            } else {
                t.day() + 1
            }
        }
        _ => t.day(),
    };
    Some(day)
}

/// How far ahead to look for the next matching date: a schedule whose
/// dates are rare (29 February on a Monday) still matches within this.
const SEARCH_DAYS: i64 = 366 * 30;

/// The next `count` start times strictly after `from`, in UTC. A cron
/// date is moved `offset_days` later (`ScheduleOffset`); rates are anchored
/// at `from`. Fewer come back when the schedule ends.
pub fn next_starts(
    schedule: &Schedule,
    tz: &TimeZone,
    offset_days: i64,
    from: Timestamp,
    count: usize,
) -> Vec<Timestamp> {
    let mut out = Vec::new();
    match schedule {
        Schedule::At(dt) => {
            if let Ok(z) = dt.to_zoned(tz.clone()) {
                if z.timestamp() > from {
                    out.push(z.timestamp());
                }
            }
        }
        Schedule::Rate { seconds, .. } => {
            let mut t = from;
            for _ in 0..count {
                match t.checked_add(jiff::SignedDuration::from_secs(*seconds)) {
                    Ok(next) => {
                        out.push(next);
                        t = next;
                    }
                    Err(_) => break,
                }
            }
        }
        Schedule::Cron(cron) => {
            // The cron date of a window starting after `from` is up to
            // `offset_days` before it: start the walk that far back.
            let start_local = from.to_zoned(tz.clone());
            let Ok(mut day) = start_local.date().checked_sub((offset_days + 1).days()) else {
                return out;
            };
            for _ in 0..SEARCH_DAYS {
                if out.len() >= count {
                    break;
                }
                if day.year() > LAST_YEAR as i16 {
                    break;
                }
                if cron.date_matches(day) {
                    let Ok(run_day) = day.checked_add(offset_days.days()) else {
                        break;
                    };
                    // A daylight-saving gap can move a time past a later one: sort the day.
                    let mut times: Vec<Timestamp> = cron
                        .hours
                        .iter()
                        .flat_map(|h| cron.minutes.iter().map(move |m| (*h, *m)))
                        .filter_map(|(h, m)| {
                            let local = run_day.to_datetime(Time::constant(h as i8, m as i8, 0, 0));
                            local.to_zoned(tz.clone()).ok().map(|z| z.timestamp())
                        })
                        .collect();
                    times.sort();
                    times.dedup();
                    for t in times {
                        if t > from && out.len() < count && out.last().is_none_or(|l| t > *l) {
                            out.push(t);
                        }
                    }
                }
                match day.tomorrow() {
                    Ok(next) => day = next,
                    Err(_) => break,
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
