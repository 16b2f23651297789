//! Text as counterparts that speak only ASCII take it: Vietnamese with its diacritics dropped.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// `s` with every diacritic dropped: Unicode canonical decomposition (NFD) without the
/// combining marks, so `"phí"` and its decomposed spelling are both `"phi"`; `đ` becomes `d`
/// and `Đ` (and `Ð`, the look-alike some keyboards type) `D`, which NFD leaves alone. Other
/// characters are kept as they are.
pub fn without_diacritics(s: &str) -> String {
    s.nfd()
        .filter(|c| !is_combining_mark(*c))
        .map(|c| match c {
            'đ' => 'd',
            'Đ' | 'Ð' => 'D',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vietnamese_loses_its_diacritics_and_nothing_else() {
        assert_eq!(without_diacritics("Lệ phí hộ tịch"), "Le phi ho tich");
        assert_eq!(without_diacritics("ĐỒNG Ðà đã"), "DONG Da da");
        // Decomposed input gives the same.
        assert_eq!(without_diacritics("phi\u{301}"), "phi");
        assert_eq!(without_diacritics("a/b ✓"), "a/b ✓");
    }
}
