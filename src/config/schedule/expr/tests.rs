use super::*;

fn utc(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn starts(expr: &str, tz: &str, offset: i64, from: &str, n: usize) -> Vec<String> {
    let schedule = Schedule::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
    let tz = TimeZone::get(tz).unwrap();
    next_starts(&schedule, &tz, offset, utc(from), n)
        .iter()
        .map(|t| t.to_string())
        .collect()
}

const JAN_1: &str = "2026-01-01T00:00:00Z";

#[test]
fn every_example_in_the_patch_manager_guide() {
    let table: &[(&str, [&str; 3])] = &[
        (
            "cron(0 2 ? * SUN#2 *)",
            [
                "2026-01-11T02:00:00Z",
                "2026-02-08T02:00:00Z",
                "2026-03-08T02:00:00Z",
            ],
        ),
        (
            "cron(0 3 ? * SAT#1 *)",
            [
                "2026-01-03T03:00:00Z",
                "2026-02-07T03:00:00Z",
                "2026-03-07T03:00:00Z",
            ],
        ),
        (
            "cron(0 1 ? * SUN#3 *)",
            [
                "2026-01-18T01:00:00Z",
                "2026-02-15T01:00:00Z",
                "2026-03-15T01:00:00Z",
            ],
        ),
        (
            "cron(0 0 ? * SUNL *)",
            [
                "2026-01-25T00:00:00Z",
                "2026-02-22T00:00:00Z",
                "2026-03-29T00:00:00Z",
            ],
        ),
        (
            "cron(0 2 15 * ? *)",
            [
                "2026-01-15T02:00:00Z",
                "2026-02-15T02:00:00Z",
                "2026-03-15T02:00:00Z",
            ],
        ),
        (
            "cron(0 2 ? * SUN *)",
            [
                "2026-01-04T02:00:00Z",
                "2026-01-11T02:00:00Z",
                "2026-01-18T02:00:00Z",
            ],
        ),
        (
            "cron(0 3 ? * SAT *)",
            [
                "2026-01-03T03:00:00Z",
                "2026-01-10T03:00:00Z",
                "2026-01-17T03:00:00Z",
            ],
        ),
        (
            "cron(0 2 ? * SUN#1 *)",
            [
                "2026-01-04T02:00:00Z",
                "2026-02-01T02:00:00Z",
                "2026-03-01T02:00:00Z",
            ],
        ),
    ];
    for (expr, expected) in table {
        assert_eq!(starts(expr, "UTC", 0, JAN_1, 3), expected, "{expr}");
    }
}

#[test]
fn strictly_after_from() {
    assert_eq!(
        starts("cron(0 2 ? * SUN#2 *)", "UTC", 0, "2026-01-11T02:00:00Z", 1),
        ["2026-02-08T02:00:00Z"]
    );
    assert_eq!(
        starts("cron(0 2 ? * SUN#2 *)", "UTC", 0, "2026-01-11T01:59:59Z", 1),
        ["2026-01-11T02:00:00Z"]
    );
}

#[test]
fn days_that_do_not_exist_never_roll_over() {
    assert_eq!(
        starts("cron(0 0 31 * ? *)", "UTC", 0, JAN_1, 4),
        [
            "2026-01-31T00:00:00Z",
            "2026-03-31T00:00:00Z",
            "2026-05-31T00:00:00Z",
            "2026-07-31T00:00:00Z"
        ]
    );
    assert_eq!(
        starts("cron(0 0 29 FEB ? *)", "UTC", 0, JAN_1, 2),
        ["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"]
    );
}

#[test]
fn last_and_nearest_weekdays() {
    // 31 Jan 2026 is a Saturday: the last weekday is Friday the 30th.
    assert_eq!(
        starts("cron(0 0 LW * ? *)", "UTC", 0, JAN_1, 1),
        ["2026-01-30T00:00:00Z"]
    );
    assert_eq!(
        starts("cron(0 0 L * ? *)", "UTC", 0, JAN_1, 2),
        ["2026-01-31T00:00:00Z", "2026-02-28T00:00:00Z"]
    );
    // 1 Aug 2026 is a Saturday: 1W stays in August, on Monday the 3rd.
    assert_eq!(
        starts("cron(0 0 1W AUG ? 2026)", "UTC", 0, JAN_1, 1),
        ["2026-08-03T00:00:00Z"]
    );
    // 31 May 2026 is a Sunday: 31W is Friday the 29th.
    assert_eq!(
        starts("cron(0 0 31W MAY ? 2026)", "UTC", 0, JAN_1, 1),
        ["2026-05-29T00:00:00Z"]
    );
}

#[test]
fn ranges_steps_lists_and_names() {
    assert_eq!(
        starts("cron(0/20 9 ? JAN MON-FRI 2026)", "UTC", 0, JAN_1, 4),
        [
            "2026-01-01T09:00:00Z",
            "2026-01-01T09:20:00Z",
            "2026-01-01T09:40:00Z",
            "2026-01-02T09:00:00Z"
        ]
    );
    assert_eq!(
        starts("cron(15 6,18 1 JAN,JUL ? *)", "UTC", 0, JAN_1, 3),
        [
            "2026-01-01T06:15:00Z",
            "2026-01-01T18:15:00Z",
            "2026-07-01T06:15:00Z"
        ]
    );
}

#[test]
fn years_end_the_schedule() {
    assert_eq!(
        starts(
            "cron(0 2 ? * SUN#2 2026)",
            "UTC",
            0,
            "2026-11-01T00:00:00Z",
            5
        ),
        ["2026-11-08T02:00:00Z", "2026-12-13T02:00:00Z"]
    );
}

#[test]
fn time_zones_and_daylight_saving() {
    // Paris is UTC+1 in winter.
    assert_eq!(
        starts("cron(0 2 ? * SUN#2 *)", "Europe/Paris", 0, JAN_1, 1),
        ["2026-01-11T01:00:00Z"]
    );
    // 8 Mar 2026, New York springs forward at 02:00: 02:00 does not exist and runs at 03:00 EDT.
    assert_eq!(
        starts("cron(0 2 ? MAR SUN#2 *)", "America/New_York", 0, JAN_1, 1),
        ["2026-03-08T07:00:00Z"]
    );
    // 1 Nov 2026, New York falls back: 01:30 happens twice and runs the first time (EDT).
    assert_eq!(
        starts("cron(30 1 ? NOV SUN#1 *)", "America/New_York", 0, JAN_1, 1),
        ["2026-11-01T05:30:00Z"]
    );
}

#[test]
fn schedule_offset_moves_the_cron_date() {
    // Patch Tuesday plus two days: the second Tuesday of January 2026 is the 13th.
    assert_eq!(
        starts("cron(0 2 ? * TUE#2 *)", "UTC", 2, JAN_1, 2),
        ["2026-01-15T02:00:00Z", "2026-02-12T02:00:00Z"]
    );
    // A cron date before `from` whose offset start is after it still counts.
    assert_eq!(
        starts("cron(0 2 ? * TUE#2 *)", "UTC", 2, "2026-01-14T00:00:00Z", 1),
        ["2026-01-15T02:00:00Z"]
    );
}

#[test]
fn rate_and_at() {
    assert_eq!(
        starts("rate(1 day)", "UTC", 0, JAN_1, 2),
        ["2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"]
    );
    assert_eq!(
        starts("rate(30 minutes)", "UTC", 0, JAN_1, 1),
        ["2026-01-01T00:30:00Z"]
    );
    assert_eq!(
        starts("at(2026-12-13T02:00:00)", "Europe/Paris", 0, JAN_1, 3),
        ["2026-12-13T01:00:00Z"]
    );
    assert!(
        starts("at(2025-12-13T02:00:00)", "UTC", 0, JAN_1, 3).is_empty(),
        "a past at() ends at once"
    );
}

#[test]
fn bad_expressions_name_the_field_and_why() {
    let e = |s: &str| Schedule::parse(s).unwrap_err().to_string();
    assert_eq!(e("cron(0 2 15 * SUN *)"), "day-of-month: one of day-of-month and day-of-week must be `?`; write `?` in the one you do not use");
    assert!(e("cron(0 2 ? * ? *)")
        .starts_with("day-of-week: day-of-month and day-of-week cannot both be `?`"));
    assert_eq!(
        e("cron(61 2 ? * SUN *)"),
        "minutes: `61` is out of range: write 0 to 59"
    );
    assert!(e("cron(0 2 ? JANUARY SUN *)")
        .starts_with("month: `JANUARY` is not a number from 1 to 12 or a name (JAN–DEC)"));
    assert!(e("cron(0 2 ? * SUN#6 *)").contains("#1 to #5"));
    assert!(e("cron(0 2 ? * SUN)").contains("has 5 fields"));
    assert_eq!(e("rate(1 days)"), "write rate(1 day), in the singular");
    assert_eq!(e("rate(5 hour)"), "write rate(5 hours), in the plural");
    assert!(e("rate(0 hours)").contains("above zero"));
    assert!(e("at(tomorrow)").contains("yyyy-mm-ddThh:mm:ss"));
    assert!(e("every sunday").contains("cron(…), rate(…) or at(…)"));
}

#[test]
fn results_are_ordered_and_strictly_after_from_for_any_start() {
    // A property over a year of start instants, hour by hour.
    let schedule = Schedule::parse("cron(0/30 1-3 ? * SUN#2 *)").unwrap();
    let tz = TimeZone::get("America/New_York").unwrap();
    let mut from = utc(JAN_1);
    for _ in 0..(24 * 365 / 7) {
        let got = next_starts(&schedule, &tz, 0, from, 4);
        assert_eq!(got.len(), 4);
        assert!(got[0] > from);
        assert!(got.windows(2).all(|w| w[0] < w[1]), "{got:?}");
        from = from
            .checked_add(jiff::SignedDuration::from_hours(7))
            .unwrap();
    }
}
