//! Ordering of kernel release strings (`5.15.0-94-generic`,
//! `5.14.0-427.13.1.el9_4.x86_64`). They are neither semver nor a single
//! distribution's format, so this is the segment comparison that `sort -V`
//! and rpm's `rpmvercmp` share: digits compare as numbers, letters as text.

use std::cmp::Ordering;

fn segments(v: &str) -> impl Iterator<Item = &str> {
    let mut rest = v;
    std::iter::from_fn(move || {
        rest = rest.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
        if rest.is_empty() {
            return None;
        }
        let digits = rest.starts_with(|c: char| c.is_ascii_digit());
        let end = rest
            .find(|c: char| !c.is_ascii_alphanumeric() || c.is_ascii_digit() != digits)
            .unwrap_or(rest.len());
        let (seg, tail) = rest.split_at(end);
        rest = tail;
        Some(seg)
    })
}

pub fn compare(a: &str, b: &str) -> Ordering {
    let mut left = segments(a);
    let mut right = segments(b);
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (Some(_), None) => return Ordering::Greater,
            (None, Some(_)) => return Ordering::Less,
            (Some(x), Some(y)) => {
                let x_num = x.starts_with(|c: char| c.is_ascii_digit());
                let y_num = y.starts_with(|c: char| c.is_ascii_digit());
                let ord = match (x_num, y_num) {
                    (true, true) => {
                        let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                        x.len().cmp(&y.len()).then_with(|| x.cmp(y))
                    }
                    // A number is newer than letters, as in rpmvercmp.
                    (true, false) => Ordering::Greater,
                    (false, true) => Ordering::Less,
                    (false, false) => x.cmp(y),
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    #[test]
    fn kernel_releases_order_like_sort_v() {
        assert_eq!(compare("5.15.0-94-generic", "5.15.0-91-generic"), Greater);
        assert_eq!(compare("6.1.0-10-amd64", "6.1.0-9-amd64"), Greater);
        assert_eq!(
            compare(
                "5.14.0-427.13.1.el9_4.x86_64",
                "5.14.0-362.8.1.el9_3.x86_64"
            ),
            Greater
        );
        assert_eq!(
            compare(
                "4.14.336-257.562.amzn2.x86_64",
                "4.14.336-257.562.amzn2.x86_64"
            ),
            Equal
        );
        assert_eq!(compare("5.10.0", "5.10.0.1"), Less);
        assert_eq!(compare("3.0.502.0", "3.0.1124.0"), Less);
        assert_eq!(compare("010", "9"), Greater);
    }
}
