//! QR codes as terminal text: two module rows per line with Unicode half
//! blocks, a quiet zone all round.

use qrcode::{Color, QrCode, QrResult};

/// Light modules around the code; the QR standard asks for four.
pub const QUIET_ZONE: usize = 4;

/// Sets black ink on a bright white background for the rest of the line.
const ANSI_DARK_ON_LIGHT: &str = "\x1b[30;107m";
const ANSI_RESET: &str = "\x1b[0m";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Palette {
    /// Dark modules in black on a bright white background, both set with
    /// ANSI colours: dark-on-light whatever the terminal's theme, which is
    /// what every phone camera reads.
    Ansi,
    /// No escape codes (`NO_COLOR`, `TERM=dumb`): the light modules are drawn
    /// in the terminal's text colour, which gives dark-on-light on the usual
    /// light-on-dark terminal.
    Plain,
}

impl Palette {
    /// Colour unless the user asked for none (`NO_COLOR`) or the terminal
    /// cannot show it (`TERM=dumb`).
    pub fn from_env() -> Palette {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
        if no_color || dumb {
            Palette::Plain
        } else {
            Palette::Ansi
        }
    }
}

/// Draw `data` as a QR code (error correction level M). The text has
/// `ceil((width + 2 * QUIET_ZONE) / 2)` lines of `width + 2 * QUIET_ZONE`
/// cells, each line ending in `\n`.
pub fn render(data: &str, palette: Palette) -> QrResult<String> {
    let code = QrCode::new(data.as_bytes())?;
    Ok(draw(code.width(), &code.to_colors(), palette))
}

fn draw(width: usize, modules: &[Color], palette: Palette) -> String {
    let size = width + 2 * QUIET_ZONE;
    let dark = |x: usize, y: usize| -> bool {
        let inside = (QUIET_ZONE..QUIET_ZONE + width).contains(&x)
            && (QUIET_ZONE..QUIET_ZONE + width).contains(&y);
        inside && modules[(y - QUIET_ZONE) * width + (x - QUIET_ZONE)] == Color::Dark
    };
    // Whether the glyph's foreground covers module (x, y). Below the last
    // row (odd sizes) there is nothing to cover.
    let ink = |x: usize, y: usize| -> bool {
        y < size
            && match palette {
                Palette::Ansi => dark(x, y),
                Palette::Plain => !dark(x, y),
            }
    };
    let mut out = String::new();
    for y in (0..size).step_by(2) {
        if palette == Palette::Ansi {
            out.push_str(ANSI_DARK_ON_LIGHT);
        }
        for x in 0..size {
            out.push(match (ink(x, y), ink(x, y + 1)) {
                (false, false) => ' ',
                (true, false) => '\u{2580}', // ▀ upper half
                (false, true) => '\u{2584}', // ▄ lower half
                (true, true) => '\u{2588}',  // █ full block
            });
        }
        if palette == Palette::Ansi {
            out.push_str(ANSI_RESET);
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const URI: &str = "otpauth://totp/pam_mfa:alice?secret=JBSWY3DPEHPK3PXP&issuer=pam_mfa\
                       &algorithm=SHA1&digits=6&period=30";

    /// Undo the drawing: the ink of every module row, without escapes.
    fn unpaint(text: &str) -> Vec<Vec<bool>> {
        let mut rows = Vec::new();
        for line in text.lines() {
            let line = line.replace(ANSI_DARK_ON_LIGHT, "").replace(ANSI_RESET, "");
            let (mut top, mut bottom) = (Vec::new(), Vec::new());
            for c in line.chars() {
                let (t, b) = match c {
                    ' ' => (false, false),
                    '\u{2580}' => (true, false),
                    '\u{2584}' => (false, true),
                    '\u{2588}' => (true, true),
                    other => panic!("unexpected character {other:?}"),
                };
                top.push(t);
                bottom.push(b);
            }
            rows.push(top);
            rows.push(bottom);
        }
        rows
    }

    fn dark_modules(data: &str) -> (usize, Vec<bool>) {
        let code = QrCode::new(data.as_bytes()).expect("encodable");
        (
            code.width(),
            code.to_colors()
                .into_iter()
                .map(|c| c == Color::Dark)
                .collect(),
        )
    }

    #[test]
    fn dimensions_include_the_quiet_zone() {
        for palette in [Palette::Ansi, Palette::Plain] {
            let (width, _) = dark_modules(URI);
            let text = render(URI, palette).expect("renders");
            let size = width + 2 * QUIET_ZONE;
            assert_eq!(text.lines().count(), size.div_ceil(2));
            for line in text.lines() {
                let cells = line.replace(ANSI_DARK_ON_LIGHT, "").replace(ANSI_RESET, "");
                assert_eq!(cells.chars().count(), size);
            }
            assert!(text.ends_with('\n'));
        }
    }

    #[test]
    fn ansi_rendering_is_the_code_dark_on_light() {
        let (width, dark) = dark_modules(URI);
        let text = render(URI, Palette::Ansi).expect("renders");
        for line in text.lines() {
            assert!(line.starts_with(ANSI_DARK_ON_LIGHT) && line.ends_with(ANSI_RESET));
        }
        let ink = unpaint(&text);
        for (y, row) in ink.iter().enumerate() {
            for (x, &inked) in row.iter().enumerate() {
                let inside = (QUIET_ZONE..QUIET_ZONE + width).contains(&x)
                    && (QUIET_ZONE..QUIET_ZONE + width).contains(&y);
                let expected = inside && dark[(y - QUIET_ZONE) * width + (x - QUIET_ZONE)];
                assert_eq!(inked, expected, "module ({x}, {y})");
            }
        }
    }

    #[test]
    fn plain_rendering_inks_the_light_modules() {
        let (width, dark) = dark_modules(URI);
        let ink = unpaint(&render(URI, Palette::Plain).expect("renders"));
        let size = width + 2 * QUIET_ZONE;
        // The quiet zone is all ink (light) on every side.
        let code_area = QUIET_ZONE..QUIET_ZONE + width;
        for (y, row) in ink.iter().take(size).enumerate() {
            for (x, &inked) in row.iter().enumerate() {
                if !(code_area.contains(&x) && code_area.contains(&y)) {
                    assert!(inked, "quiet zone module ({x}, {y})");
                }
            }
        }
        for y in 0..width {
            for x in 0..width {
                assert_eq!(ink[y + QUIET_ZONE][x + QUIET_ZONE], !dark[y * width + x]);
            }
        }
        // The half line below an odd-sized code stays blank.
        assert!(size % 2 == 1 && ink[size].iter().all(|&i| !i));
    }

    #[test]
    fn finder_pattern_sits_inside_the_quiet_zone() {
        // The top-left finder: a 7x7 dark ring starting at the quiet zone.
        let ink = unpaint(&render(URI, Palette::Ansi).expect("renders"));
        for i in 0..7 {
            assert!(ink[QUIET_ZONE][QUIET_ZONE + i]);
            assert!(ink[QUIET_ZONE + i][QUIET_ZONE]);
            assert!(!ink[QUIET_ZONE - 1][QUIET_ZONE + i]);
        }
    }

    #[test]
    fn too_long_data_is_an_error() {
        assert!(render(&"x".repeat(8000), Palette::Ansi).is_err());
    }
}
