//! A VietQR payment's code as people see it: a PNG and an SVG for the counter's screen and the
//! dashboard, and block characters for a clerk's terminal. Error correction level M (about 15%
//! of the symbol may be lost) with the standard four-module quiet zone, as payers' apps expect.

use qrcode::{EcLevel, QrCode};

/// Pixels per module in the PNG: a 57-module symbol with its quiet zone is about 400 pixels.
const PNG_MODULE_PX: u32 = 6;
/// The quiet zone, in modules, on every side (ISO/IEC 18004 asks for four).
const QUIET_ZONE: u32 = 4;

/// The payload cannot be drawn (it is too long for any QR version at level M).
#[derive(Debug, thiserror::Error)]
pub enum QrError {
    #[error("the payload does not fit a QR code: {0}")]
    Encode(#[from] qrcode::types::QrError),
    #[error("the PNG could not be written: {0}")]
    Png(#[from] png::EncodingError),
}

fn code(payload: &str) -> Result<QrCode, QrError> {
    Ok(QrCode::with_error_correction_level(payload.as_bytes(), EcLevel::M)?)
}

/// The code as an 8-bit greyscale PNG, black on white.
pub fn png(payload: &str) -> Result<Vec<u8>, QrError> {
    let code = code(payload)?;
    let modules = code.width() as u32;
    let colors = code.to_colors();
    let side_modules = modules + 2 * QUIET_ZONE;
    let side = side_modules * PNG_MODULE_PX;
    let mut pixels = Vec::with_capacity((side * side) as usize);
    for y in 0..side {
        let my = (y / PNG_MODULE_PX) as i64 - QUIET_ZONE as i64;
        for x in 0..side {
            let mx = (x / PNG_MODULE_PX) as i64 - QUIET_ZONE as i64;
            let dark = (0..modules as i64).contains(&mx)
                && (0..modules as i64).contains(&my)
                && colors[(my as usize) * modules as usize + mx as usize] == qrcode::Color::Dark;
            pixels.push(if dark { 0u8 } else { 255u8 });
        }
    }
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, side, side);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&pixels)?;
        writer.finish()?;
    }
    Ok(out)
}

/// The code as an SVG document, black on white, scaling to its container.
pub fn svg(payload: &str) -> Result<String, QrError> {
    Ok(code(payload)?
        .render::<qrcode::render::svg::Color<'_>>()
        .quiet_zone(true)
        .min_dimensions(200, 200)
        .dark_color(qrcode::render::svg::Color("#000000"))
        .light_color(qrcode::render::svg::Color("#ffffff"))
        .build())
}

/// The code in block characters, two modules per character cell, for a terminal. Dark modules
/// are drawn as spaces on a light background, which phone cameras read on dark terminals too.
pub fn terminal(payload: &str) -> Result<String, QrError> {
    Ok(code(payload)?
        .render::<qrcode::render::unicode::Dense1x2>()
        .quiet_zone(true)
        .dark_color(qrcode::render::unicode::Dense1x2::Light)
        .light_color(qrcode::render::unicode::Dense1x2::Dark)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAYLOAD: &str = "00020101021238560010A0000007270126000697041501121133666688880208QRIBFTTA530370454061500005802VN62270823HCC241126ABCDEFGH LEPHI63046BA5";

    #[test]
    fn a_png_is_a_png_with_its_quiet_zone() {
        let png = png(PAYLOAD).expect("drawn");
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let mut reader = decoder.read_info().expect("readable");
        let info = reader.info();
        let side = info.width;
        assert_eq!(side, info.height);
        let mut buf = vec![0; reader.output_buffer_size().expect("size")];
        reader.next_frame(&mut buf).expect("frame");
        // The quiet zone is white; the finder pattern's corner just inside it is black.
        let edge = (QUIET_ZONE * PNG_MODULE_PX) as usize;
        assert!(buf[..edge].iter().all(|&p| p == 255));
        assert_eq!(buf[edge * side as usize + edge], 0);
    }

    #[test]
    fn an_svg_and_a_terminal_drawing_are_made() {
        let svg = svg(PAYLOAD).expect("drawn");
        assert!(svg.starts_with("<?xml") && svg.contains("<svg"), "{}", &svg[..80]);
        let text = terminal(PAYLOAD).expect("drawn");
        assert!(text.lines().count() > 20);
    }

    #[test]
    fn a_payload_too_long_for_any_code_is_an_error() {
        assert!(png(&"9".repeat(8000)).is_err());
    }
}
