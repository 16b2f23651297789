//! The visible stamp of `?visible=true`: a form XObject (the widget's normal appearance) with a
//! frame and a few lines of Vietnamese text, set in a subset of DejaVu Sans embedded as a
//! Type 0 font (CIDFontType2, Identity-H) with `/W` widths and a `/ToUnicode` map, so the text
//! renders with its diacritics in any reader and is extracted as the same Unicode text.
//!
//! Text is laid out glyph by glyph from the font's `cmap` and advances, without shaping: the
//! Vietnamese letters are precomposed (NFC) in the font, which is what the stamp needs.

use std::collections::BTreeMap;

use lopdf::{Dictionary, Object, ObjectId, Stream, StringFormat};
use subsetter::GlyphRemapper;

use super::PadesError;

/// DejaVu Sans cut to Latin and Vietnamese (see `assets/LICENSE-DejaVu.txt`); subset again
/// per stamp to the glyphs it uses.
const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans-vi.ttf");
const FONT_NAME: &str = "DejaVuSans";

/// The stamp's size in points, its inner margin, and the largest and smallest text size.
pub(crate) const WIDTH: f32 = 260.0;
const PADDING: f32 = 6.0;
const MAX_SIZE: f32 = 9.0;
const MIN_SIZE: f32 = 4.0;
const LEADING: f32 = 1.35;

/// The objects of a stamp and the one the widget's `/AP /N` names.
pub(crate) struct Stamp {
    pub objects: Vec<(ObjectId, Object)>,
    pub appearance: ObjectId,
    pub width: f32,
    pub height: f32,
}

fn stamp_error(what: &str) -> PadesError {
    PadesError::Stamp(what.to_string())
}

pub(crate) fn build(lines: &[String], mut next_id: impl FnMut() -> Result<ObjectId, PadesError>) -> Result<Stamp, PadesError> {
    let face = ttf_parser::Face::parse(FONT, 0).map_err(|_| stamp_error("the embedded font cannot be read"))?;
    let upem = f32::from(face.units_per_em());
    let fallback = face.glyph_index('?').map(|g| g.0).unwrap_or(0);
    let mut remapper = GlyphRemapper::new();
    // New glyph id -> (advance in 1/1000 em, the character for /ToUnicode).
    let mut glyphs: BTreeMap<u16, (i64, char)> = BTreeMap::new();
    // Per line: the subset's glyph ids and the line's width in em.
    let mut shaped: Vec<(Vec<u16>, f32)> = Vec::new();
    for line in lines {
        let mut row = Vec::new();
        let mut units = 0f32;
        for c in line.chars().filter(|c| !c.is_control()) {
            let (old, shown) = match face.glyph_index(c) {
                Some(g) => (g.0, c),
                None => (fallback, '?'),
            };
            let advance = f32::from(face.glyph_hor_advance(ttf_parser::GlyphId(old)).unwrap_or(0));
            let new = remapper.remap(old);
            let thousandths = (advance * 1000.0 / upem).round() as i64;
            glyphs.entry(new).or_insert((thousandths, shown));
            units += advance / upem;
            row.push(new);
        }
        shaped.push((row, units));
    }
    let subset = subsetter::subset(FONT, 0, &remapper).map_err(|e| PadesError::Stamp(format!("font subset: {e}")))?;

    // The largest size at which the longest line fits, within bounds.
    let longest = shaped.iter().map(|(_, u)| *u).fold(0f32, f32::max);
    let room = WIDTH - 2.0 * PADDING;
    let size = if longest > 0.0 {
        (room / longest).clamp(MIN_SIZE, MAX_SIZE)
    } else {
        MAX_SIZE
    };
    let line_height = size * LEADING;
    let height = (2.0 * PADDING + line_height * shaped.len() as f32).ceil();

    let mut content = String::new();
    content.push_str("q\n0.96 0.97 1 rg 0 0 ");
    content.push_str(&format!("{WIDTH} {height} re f\n"));
    content.push_str(&format!("0.8 0.1 0.1 RG 1.2 w 0.6 0.6 {} {} re S\n", WIDTH - 1.2, height - 1.2));
    content.push_str(&format!("BT\n0.75 0.05 0.05 rg\n/F1 {size:.2} Tf\n"));
    for (i, (row, _)) in shaped.iter().enumerate() {
        let baseline = height - PADDING - size - line_height * i as f32 + (line_height - size) / 2.0;
        content.push_str(&format!("1 0 0 1 {PADDING:.2} {baseline:.2} Tm <"));
        for g in row {
            content.push_str(&format!("{g:04X}"));
        }
        content.push_str("> Tj\n");
    }
    content.push_str("ET\nQ\n");

    let tag = subset_tag(&glyphs);
    let base_font = Object::Name(format!("{tag}+{FONT_NAME}").into_bytes());

    let font_file = next_id()?;
    let descriptor = next_id()?;
    let cid_font = next_id()?;
    let to_unicode = next_id()?;
    let type0 = next_id()?;
    let appearance = next_id()?;

    let mut file_dict = Dictionary::new();
    file_dict.set("Length1", subset.len() as i64);
    let mut file_stream = Stream::new(file_dict, subset);
    file_stream
        .compress()
        .map_err(|_| stamp_error("the font subset cannot be compressed"))?;

    let bbox = face.global_bounding_box();
    let scale = |v: i16| Object::Integer((f32::from(v) * 1000.0 / upem).round() as i64);
    let mut fd = Dictionary::new();
    fd.set("Type", Object::Name(b"FontDescriptor".to_vec()));
    fd.set("FontName", base_font.clone());
    fd.set("Flags", 4);
    fd.set(
        "FontBBox",
        Object::Array(vec![scale(bbox.x_min), scale(bbox.y_min), scale(bbox.x_max), scale(bbox.y_max)]),
    );
    fd.set("ItalicAngle", 0);
    fd.set("Ascent", scale(face.ascender()));
    fd.set("Descent", scale(face.descender()));
    fd.set("CapHeight", scale(face.capital_height().unwrap_or(face.ascender())));
    fd.set("StemV", 80);
    fd.set("FontFile2", Object::Reference(font_file));

    let widths: Vec<Object> = (0..remapper.num_gids())
        .map(|g| Object::Integer(glyphs.get(&g).map_or(0, |(w, _)| *w)))
        .collect();
    let mut system_info = Dictionary::new();
    system_info.set("Registry", Object::string_literal("Adobe"));
    system_info.set("Ordering", Object::string_literal("Identity"));
    system_info.set("Supplement", 0);
    let mut cid = Dictionary::new();
    cid.set("Type", Object::Name(b"Font".to_vec()));
    cid.set("Subtype", Object::Name(b"CIDFontType2".to_vec()));
    cid.set("BaseFont", base_font.clone());
    cid.set("CIDSystemInfo", Object::Dictionary(system_info));
    cid.set("FontDescriptor", Object::Reference(descriptor));
    cid.set("CIDToGIDMap", Object::Name(b"Identity".to_vec()));
    cid.set("W", Object::Array(vec![0.into(), Object::Array(widths)]));

    let mut cmap_stream = Stream::new(Dictionary::new(), to_unicode_cmap(&glyphs).into_bytes());
    cmap_stream
        .compress()
        .map_err(|_| stamp_error("the ToUnicode map cannot be compressed"))?;

    let mut font = Dictionary::new();
    font.set("Type", Object::Name(b"Font".to_vec()));
    font.set("Subtype", Object::Name(b"Type0".to_vec()));
    font.set("BaseFont", base_font);
    font.set("Encoding", Object::Name(b"Identity-H".to_vec()));
    font.set("DescendantFonts", Object::Array(vec![Object::Reference(cid_font)]));
    font.set("ToUnicode", Object::Reference(to_unicode));

    let mut fonts = Dictionary::new();
    fonts.set("F1", Object::Reference(type0));
    let mut resources = Dictionary::new();
    resources.set("Font", Object::Dictionary(fonts));
    let mut xobject = Dictionary::new();
    xobject.set("Type", Object::Name(b"XObject".to_vec()));
    xobject.set("Subtype", Object::Name(b"Form".to_vec()));
    xobject.set(
        "BBox",
        Object::Array(vec![0.into(), 0.into(), Object::Real(WIDTH), Object::Real(height)]),
    );
    xobject.set("Resources", Object::Dictionary(resources));
    let mut form = Stream::new(xobject, content.into_bytes());
    form.compress().map_err(|_| stamp_error("the appearance cannot be compressed"))?;

    Ok(Stamp {
        objects: vec![
            (font_file, Object::Stream(file_stream)),
            (descriptor, Object::Dictionary(fd)),
            (cid_font, Object::Dictionary(cid)),
            (to_unicode, Object::Stream(cmap_stream)),
            (type0, Object::Dictionary(font)),
            (appearance, Object::Stream(form)),
        ],
        appearance,
        width: WIDTH,
        height,
    })
}

/// Six capital letters naming this subset (ISO 32000-1, 9.6.4), from the glyphs it holds.
fn subset_tag(glyphs: &BTreeMap<u16, (i64, char)>) -> String {
    let mut key = Vec::new();
    for (g, (_, c)) in glyphs {
        key.extend_from_slice(&g.to_be_bytes());
        key.extend_from_slice(&u32::from(*c).to_be_bytes());
    }
    crate::sha256(&key)[..6].iter().map(|b| char::from(b'A' + b % 26)).collect()
}

/// A `/ToUnicode` CMap mapping each glyph id of the subset to its character (UTF-16BE).
fn to_unicode_cmap(glyphs: &BTreeMap<u16, (i64, char)>) -> String {
    let mut s = String::from(
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n\
         /CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n\
         /CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n\
         1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n",
    );
    let entries: Vec<(&u16, &char)> = glyphs.iter().map(|(g, (_, c))| (g, c)).filter(|(g, _)| **g != 0).collect();
    // At most 100 entries per block, as the CMap format requires.
    for chunk in entries.chunks(100) {
        s.push_str(&format!("{} beginbfchar\n", chunk.len()));
        for (g, c) in chunk {
            let mut units = [0u16; 2];
            let hex: String = c.encode_utf16(&mut units).iter().map(|u| format!("{u:04X}")).collect();
            s.push_str(&format!("<{g:04X}> <{hex}>\n"));
        }
        s.push_str("endbfchar\n");
    }
    s.push_str("endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n");
    s
}

/// A literal string for the document's text fields.
pub(crate) fn text_string(s: &str) -> Object {
    // PDFDocEncoding covers ASCII; anything else is UTF-16BE with a byte order mark.
    if s.is_ascii() {
        Object::String(s.as_bytes().to_vec(), StringFormat::Literal)
    } else {
        let mut bytes = vec![0xFE, 0xFF];
        for u in s.encode_utf16() {
            bytes.extend_from_slice(&u.to_be_bytes());
        }
        Object::String(bytes, StringFormat::Hexadecimal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_embeds_only_the_glyphs_it_uses() {
        let lines = vec!["Ký bởi: Nguyễn Văn A".to_string(), "Thời gian: 26/11/2026".to_string()];
        let mut n = 100;
        let stamp = build(&lines, || {
            n += 1;
            Ok((n, 0))
        })
        .unwrap();
        assert_eq!(stamp.objects.len(), 6);
        let Object::Stream(file) = &stamp.objects[0].1 else {
            panic!("font file")
        };
        let subset_len = file.dict.get(b"Length1").unwrap().as_i64().unwrap() as usize;
        assert!(subset_len < FONT.len() / 2, "subset {subset_len} of {}", FONT.len());
        let Object::Stream(cmap) = &stamp.objects[3].1 else {
            panic!("cmap")
        };
        let text = String::from_utf8(cmap.decompressed_content().unwrap()).unwrap();
        // ý, ở, ễ, ă, ờ each mapped back to their code points.
        for cp in ["00FD", "1EDF", "1EC5", "0103", "1EDD"] {
            assert!(text.contains(&format!("<{cp}>")), "{cp} missing: {text}");
        }
        assert!(stamp.height > 2.0 * PADDING);
    }

    #[test]
    fn a_long_line_shrinks_the_text_to_fit() {
        let long = vec!["Cơ quan: ".to_string() + &"Ủy ban nhân dân ".repeat(4)];
        let stamp = build(&long, || Ok((1, 0))).unwrap();
        let Object::Stream(form) = &stamp.objects[5].1 else {
            panic!("form")
        };
        let content = String::from_utf8(form.decompressed_content().unwrap()).unwrap();
        let size: f32 = content
            .split("/F1 ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|s| s.parse().ok())
            .unwrap();
        assert!((MIN_SIZE..MAX_SIZE).contains(&size), "{size}");
    }

    #[test]
    fn text_strings_are_pdfdoc_or_utf16() {
        assert_eq!(text_string("Sig"), Object::String(b"Sig".to_vec(), StringFormat::Literal));
        assert_eq!(
            text_string("Ký"),
            Object::String(vec![0xFE, 0xFF, 0, b'K', 0, 0xFD], StringFormat::Hexadecimal)
        );
    }
}
