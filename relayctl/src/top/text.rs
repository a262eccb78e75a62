//! Text that goes on an operator's terminal: what relayd (and so, through call-ids and
//! tags, any SIP peer) put in a string is made printable and cut to a number of terminal
//! columns, counting wide characters as two and never splitting a character.

use unicode_width::UnicodeWidthChar;

/// Whether a character could steer the terminal or reorder what is shown: C0/C1
/// controls (ESC starts every terminal command) and the bidirectional overrides.
fn unsafe_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
}

/// `s` with every unsafe character made `?` (no width limit): what the plain tables print.
pub fn printable(s: &str) -> String {
    s.chars().map(|c| if unsafe_char(c) { '?' } else { c }).collect()
}

/// Columns a character takes once made printable.
fn cols(c: char) -> usize {
    if unsafe_char(c) {
        1
    } else {
        c.width().unwrap_or(0)
    }
}

/// Terminal columns of `s` as [`fit`] prints it.
pub fn width(s: &str) -> usize {
    s.chars().map(cols).sum()
}

/// `s` made printable (unsafe characters become `?`) in at most `w` columns; a cut is
/// marked with `…`.
pub fn fit(s: &str, w: usize) -> String {
    let mut out = String::with_capacity(s.len().min(w.saturating_mul(4)));
    let mut used = 0;
    let total = width(s);
    let room = if total > w { w.saturating_sub(1) } else { w };
    for c in s.chars() {
        let n = cols(c);
        if used + n > room {
            break;
        }
        used += n;
        out.push(if unsafe_char(c) { '?' } else { c });
    }
    if total > w && w > 0 {
        out.push('…');
    }
    out
}

/// [`fit`] padded with spaces to exactly `w` columns, left-aligned.
pub fn left(s: &str, w: usize) -> String {
    let mut out = fit(s, w);
    let n = width(&out);
    out.extend(std::iter::repeat_n(' ', w.saturating_sub(n)));
    out
}

/// [`fit`] padded with spaces to exactly `w` columns, right-aligned (numbers).
pub fn right(s: &str, w: usize) -> String {
    let body = fit(s, w);
    let mut out: String = std::iter::repeat_n(' ', w.saturating_sub(width(&body))).collect();
    out.push_str(&body);
    out
}

/// A count or rate in a few characters: `950`, `12.5`, `1.2k`, `34M`, ... `-` when
/// unknown or not finite.
pub fn human(v: Option<f64>) -> String {
    let Some(v) = v.filter(|v| v.is_finite()) else { return "-".into() };
    let (sign, a) = if v < 0.0 { ("-", -v) } else { ("", v) };
    if a < 10.0 {
        let s = format!("{a:.1}");
        return format!("{sign}{}", s.strip_suffix(".0").unwrap_or(&s));
    }
    if a < 1000.0 {
        return format!("{sign}{a:.0}");
    }
    let mut x = a;
    for unit in ["k", "M", "G", "T", "P", "E"] {
        x /= 1000.0;
        if x < 999.5 {
            return if x < 10.0 { format!("{sign}{x:.1}{unit}") } else { format!("{sign}{x:.0}{unit}") };
        }
    }
    format!("{sign}huge")
}

/// A measurement with one decimal (`12.3`), large ones as [`human`], `-` when unknown.
pub fn decimal(v: Option<f64>) -> String {
    match v.filter(|v| v.is_finite()) {
        Some(v) if v.abs() < 10_000.0 => format!("{v:.1}"),
        other => human(other),
    }
}

/// An age in seconds as `42s`, `5m03s`, `2h05m`, `3d04h`.
pub fn age(s: Option<u64>) -> String {
    match s {
        None => "-".into(),
        Some(s) if s < 60 => format!("{s}s"),
        Some(s) if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        Some(s) if s < 86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        Some(s) => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_counts_columns_and_never_splits_a_character() {
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("abcd", 4), "abcd");
        assert_eq!(fit("abc", 0), "");
        assert_eq!(fit("ab", 1), "…");
        // two columns each: three fit in seven with the mark
        assert_eq!(fit("日本語の通話", 7), "日本語…");
        assert_eq!(width(&fit("日本語の通話", 6)), 5);
        assert_eq!(fit("é\u{301}x", 2), "é\u{301}x");
        assert_eq!(fit("a\x1b[2Jb\u{202e}c\u{9b}", 20), "a?[2Jb?c?");
        assert_eq!(left("日", 3), "日 ");
        assert_eq!(right("12", 4), "  12");
        assert_eq!(right("123456", 4), "123…");
    }

    #[test]
    fn numbers_stay_short() {
        let cases = [
            (None, "-"),
            (Some(f64::NAN), "-"),
            (Some(0.0), "0"),
            (Some(2.25), "2.2"),
            (Some(950.0), "950"),
            (Some(999.6), "1000"),
            (Some(12_345.0), "12k"),
            (Some(1_500_000.0), "1.5M"),
            (Some(-2500.0), "-2.5k"),
            (Some(u64::MAX as f64), "18E"),
            (Some(f64::MAX), "huge"),
        ];
        for (v, want) in cases {
            assert_eq!(human(v), want, "{v:?}");
        }
        assert_eq!(decimal(Some(3.04)), "3.0");
        assert_eq!(decimal(Some(1e300)), "huge");
        assert_eq!(age(Some(3725)), "1h02m");
        assert_eq!(age(Some(u64::MAX)), "213503982334601d07h");
    }
}

#[cfg(test)]
mod printable_tests {
    #[test]
    fn terminal_commands_and_bidi_overrides_become_question_marks() {
        assert_eq!(super::printable("a\u{1b}]0;owned\u{7}b\u{202e}c\nd"), "a?]0;owned?b?c?d");
        assert_eq!(super::printable("caller-1 ☎"), "caller-1 ☎");
    }
}
