//! A small, strict XML tree built with quick-xml, keeping exactly what canonicalization needs:
//! element names with their prefixes, namespace declarations where they were written,
//! attributes, text (line ends normalized, references resolved), comments and processing
//! instructions. A DOCTYPE is refused outright, so no entity can be declared or expanded; the
//! only references allowed are the five predefined ones and character references.

use quick_xml::XmlVersion;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};

/// Documents larger than this are refused before parsing.
pub const MAX_XML_BYTES: usize = 4 * 1024 * 1024;
/// Elements nested deeper than this are refused.
pub const MAX_DEPTH: usize = 256;
/// Namespace declarations in scope at any one element (its own and its ancestors') beyond
/// this are refused: real documents have a handful, and canonicalization and signature
/// lookups must not be made to scan thousands per element.
pub const MAX_NAMESPACES_IN_SCOPE: usize = 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum XmlError {
    #[error("XML with a DOCTYPE is refused")]
    Doctype,
    #[error("the XML document is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the XML document is nested too deeply")]
    TooDeep,
    #[error("the XML document is not UTF-8")]
    NotUtf8,
    #[error("unknown entity &{0};: only the predefined entities are allowed")]
    UnknownEntity(String),
    #[error("malformed XML: {0}")]
    Malformed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    pub prefix: Option<String>,
    pub local: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub prefix: Option<String>,
    pub local: String,
    /// Declarations written on this element: ("" for the default namespace, uri).
    pub ns_decls: Vec<(String, String)>,
    pub attrs: Vec<Attr>,
    pub children: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Element(Element),
    Text(String),
    Comment(String),
    Pi { target: String, data: String },
}

#[derive(Debug, Clone)]
pub struct Document {
    /// Comments and PIs before the root element.
    pub prolog: Vec<Node>,
    pub root: Element,
    pub epilog: Vec<Node>,
    /// Byte offset where the root's end tag starts (or of `/>` for an empty root), and whether
    /// the root was written empty: where an enveloped signature is inserted.
    pub root_end: usize,
    pub root_empty: bool,
}

impl Element {
    pub fn qname(&self) -> String {
        match &self.prefix {
            Some(p) => format!("{p}:{}", self.local),
            None => self.local.clone(),
        }
    }

    pub fn attr(&self, local: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.prefix.is_none() && a.local == local)
            .map(|a| a.value.as_str())
    }

    pub fn child_elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            _ => None,
        })
    }

    /// All text directly inside this element.
    pub fn text(&self) -> String {
        self.children
            .iter()
            .filter_map(|n| match n {
                Node::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect()
    }
}

fn split(qname: &str) -> (Option<String>, String) {
    match qname.split_once(':') {
        Some((p, l)) => (Some(p.to_string()), l.to_string()),
        None => (None, qname.to_string()),
    }
}

fn malformed(e: impl std::fmt::Display) -> XmlError {
    XmlError::Malformed(e.to_string())
}

/// XML 1.0 (5th ed.) `NameStartChar` without `:`, and `NameChar` without `:`.
fn is_name_start(c: char) -> bool {
    matches!(c, 'A'..='Z' | '_' | 'a'..='z' | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{2FF}'
        | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}' | '\u{2070}'..='\u{218F}'
        | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}' | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}'
        | '\u{10000}'..='\u{EFFFF}')
}

fn is_name_char(c: char) -> bool {
    is_name_start(c) || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// A `QName` of Namespaces in XML: an NCName, or two joined by one `:`. quick-xml takes any
/// bytes up to a space, `=` or `>` as a name, so `<a//>` was an element named `a/`, whose
/// canonical form `<a/></a/>` is not XML (found by fuzzing, docs/fuzzing.md).
fn check_qname(qname: &str) -> Result<(), XmlError> {
    let ncname = |s: &str| s.chars().next().is_some_and(is_name_start) && s.chars().all(is_name_char);
    let ok = match qname.split_once(':') {
        Some((p, l)) => ncname(p) && ncname(l),
        None => ncname(qname),
    };
    if ok {
        Ok(())
    } else {
        Err(XmlError::Malformed(format!("{qname:?} is not an XML name")))
    }
}

fn element(start: &BytesStart<'_>) -> Result<Element, XmlError> {
    let qname = start.name().as_ref().to_string();
    check_qname(&qname)?;
    let (prefix, local) = split(&qname);
    let mut ns_decls = Vec::new();
    let mut attrs = Vec::new();
    for a in start.attributes() {
        let a = a.map_err(malformed)?;
        let key = a.key.as_ref().to_string();
        check_qname(&key)?;
        let value = a.normalized_value(XmlVersion::Implicit1_0).map_err(|e| match e {
            quick_xml::Error::Escape(quick_xml::escape::EscapeError::UnrecognizedEntity(_, name)) => XmlError::UnknownEntity(name),
            other => malformed(other),
        })?;
        let value = value.into_owned();
        if key == "xmlns" {
            ns_decls.push((String::new(), value));
        } else if let Some(p) = key.strip_prefix("xmlns:") {
            ns_decls.push((p.to_string(), value));
        } else {
            let (prefix, local) = split(&key);
            attrs.push(Attr { prefix, local, value });
        }
    }
    Ok(Element {
        prefix,
        local,
        ns_decls,
        attrs,
        children: Vec::new(),
    })
}

fn push_text(stack: &mut [Element], text: &str) {
    if let Some(top) = stack.last_mut() {
        if let Some(Node::Text(t)) = top.children.last_mut() {
            t.push_str(text);
        } else {
            top.children.push(Node::Text(text.to_string()));
        }
    }
}

pub fn parse(bytes: &[u8]) -> Result<Document, XmlError> {
    if bytes.len() > MAX_XML_BYTES {
        return Err(XmlError::TooLarge(MAX_XML_BYTES));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| XmlError::NotUtf8)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let bom = bytes.len() - text.len();
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().trim_text(false);
    let mut stack: Vec<Element> = Vec::new();
    let mut prolog = Vec::new();
    let mut epilog = Vec::new();
    let mut root: Option<Element> = None;
    let mut root_end = 0;
    let mut root_empty = false;
    let mut in_scope = 0usize;
    let too_many = || malformed(format!("more than {MAX_NAMESPACES_IN_SCOPE} namespace declarations in scope"));
    loop {
        let before = reader.buffer_position() as usize;
        let ev = reader.read_event().map_err(malformed)?;
        let outside = |root: &Option<Element>, prolog: &mut Vec<Node>, epilog: &mut Vec<Node>, n: Node| {
            if root.is_some() { epilog.push(n) } else { prolog.push(n) }
        };
        match ev {
            Event::DocType(_) => return Err(XmlError::Doctype),
            Event::Decl(_) => {}
            Event::Start(s) => {
                if root.is_some() && stack.is_empty() {
                    return Err(malformed("content after the root element"));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                let e = element(&s)?;
                in_scope += e.ns_decls.len();
                if in_scope > MAX_NAMESPACES_IN_SCOPE {
                    return Err(too_many());
                }
                stack.push(e);
            }
            Event::Empty(s) => {
                let e = element(&s)?;
                if in_scope + e.ns_decls.len() > MAX_NAMESPACES_IN_SCOPE {
                    return Err(too_many());
                }
                match stack.last_mut() {
                    Some(top) => top.children.push(Node::Element(e)),
                    None if root.is_none() => {
                        root = Some(e);
                        root_empty = true;
                        root_end = bom + reader.buffer_position() as usize - 2;
                    }
                    None => return Err(malformed("a second root element")),
                }
            }
            Event::End(_) => {
                let Some(done) = stack.pop() else {
                    return Err(malformed("unbalanced end tag"));
                };
                in_scope = in_scope.saturating_sub(done.ns_decls.len());
                match stack.last_mut() {
                    Some(top) => top.children.push(Node::Element(done)),
                    None => {
                        root = Some(done);
                        root_end = bom + before;
                    }
                }
            }
            Event::Text(t) => {
                let content = t.xml10_content();
                if stack.is_empty() {
                    if !content.trim().is_empty() {
                        return Err(malformed("text outside the root element"));
                    }
                } else {
                    push_text(&mut stack, &content);
                }
            }
            Event::CData(c) => {
                if stack.is_empty() {
                    return Err(malformed("CDATA outside the root element"));
                }
                push_text(&mut stack, &c.xml10_content());
            }
            Event::GeneralRef(r) => {
                if stack.is_empty() {
                    return Err(malformed("a reference outside the root element"));
                }
                let resolved = if r.is_char_ref() {
                    r.resolve_char_ref().map_err(malformed)?.map(String::from)
                } else {
                    let name = r.xml10_content().into_owned();
                    match resolve_predefined_entity(&name) {
                        Some(s) => Some(s.to_string()),
                        None => return Err(XmlError::UnknownEntity(name)),
                    }
                };
                let s = resolved.ok_or_else(|| malformed("invalid character reference"))?;
                push_text(&mut stack, &s);
            }
            Event::Comment(c) => {
                let n = Node::Comment(c.xml10_content().into_owned());
                match stack.last_mut() {
                    Some(top) => top.children.push(n),
                    None => outside(&root, &mut prolog, &mut epilog, n),
                }
            }
            Event::PI(p) => {
                let n = Node::Pi {
                    target: p.target().to_string(),
                    data: p.content().trim_start().to_string(),
                };
                match stack.last_mut() {
                    Some(top) => top.children.push(n),
                    None => outside(&root, &mut prolog, &mut epilog, n),
                }
            }
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(malformed("the document ends inside an element"));
    }
    let root = root.ok_or_else(|| malformed("no root element"))?;
    Ok(Document {
        prolog,
        root,
        epilog,
        root_end,
        root_empty,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing (xml_c14n): `<a//>` was read as an element named `a/`, and its
    /// canonical form was not XML. Names must be XML names.
    #[test]
    fn names_that_are_not_xml_names_are_refused() {
        for bad in [
            &b"<doc><a//></doc>"[..],
            b"<doc><?app x?><a//></doc>",
            b"<doc a/=\"1\"/>",
            b"<doc xmlns:=\"urn:x\"/>",
            b"<doc><p:q:r/></doc>",
            b"<doc><:a/></doc>",
            b"<doc><1a/></doc>",
        ] {
            assert!(
                matches!(parse(bad), Err(XmlError::Malformed(_))),
                "{} was accepted",
                String::from_utf8_lossy(bad)
            );
        }
        for good in [
            &b"<doc><a/></doc>"[..],
            b"<p:doc xmlns:p=\"urn:x\" p:a-b.c=\"1\"><Ti\xe1\xba\xbfn_1/></p:doc>",
        ] {
            assert!(parse(good).is_ok(), "{} was refused", String::from_utf8_lossy(good));
        }
    }

    #[test]
    fn doctype_and_entities_are_refused() {
        let bomb = br#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><lolz>&lol2;</lolz>"#;
        assert_eq!(parse(bomb).unwrap_err(), XmlError::Doctype);
        assert_eq!(parse(b"<a>&nbsp;</a>").unwrap_err(), XmlError::UnknownEntity("nbsp".into()));
        assert_eq!(parse(b"<a b=\"&x;\"/>").unwrap_err(), XmlError::UnknownEntity("x".into()));
    }

    #[test]
    fn references_line_ends_and_attribute_whitespace() {
        let d = parse(b"<a x=\"1\n2&#xA;3\">t&amp;u&#x41;\r\nv<![CDATA[<w>]]></a>").unwrap();
        assert_eq!(d.root.attr("x"), Some("1 2\n3"));
        assert_eq!(d.root.text(), "t&uA\nv<w>");
    }

    #[test]
    fn records_where_the_root_ends() {
        let src = "<?xml version=\"1.0\"?>\n<r a=\"1\"><c/>text</r>\n";
        let d = parse(src.as_bytes()).unwrap();
        assert_eq!(&src[d.root_end..d.root_end + 4], "</r>");
        let d = parse(b"<r/>").unwrap();
        assert!(d.root_empty);
        assert_eq!(d.root_end, 2);
    }

    #[test]
    fn structure_is_checked() {
        assert!(parse(b"<a><b></a>").is_err());
        assert!(parse(b"<a/><b/>").is_err());
        assert!(parse(b"text").is_err());
        let deep = format!("{}{}", "<a>".repeat(MAX_DEPTH + 1), "</a>".repeat(MAX_DEPTH + 1));
        assert_eq!(parse(deep.as_bytes()).unwrap_err(), XmlError::TooDeep);
    }

    #[test]
    fn namespace_declarations_in_scope_are_bounded_not_their_total() {
        let decls = |n: usize| (0..n).map(|i| format!(" xmlns:p{i}=\"urn:{i}\"")).collect::<String>();
        let at_limit = format!("<r{}/>", decls(MAX_NAMESPACES_IN_SCOPE));
        assert!(parse(at_limit.as_bytes()).is_ok());
        let over = format!("<r{}><c xmlns:x=\"urn:x\"/></r>", decls(MAX_NAMESPACES_IN_SCOPE));
        assert!(matches!(parse(over.as_bytes()).unwrap_err(), XmlError::Malformed(m) if m.contains("namespace")));
        // Siblings each declaring their own namespace do not add up.
        let siblings = format!(
            "<r>{}</r>",
            "<c xmlns=\"urn:c\"><d xmlns:y=\"urn:y\"/></c>".repeat(3 * MAX_NAMESPACES_IN_SCOPE)
        );
        assert!(parse(siblings.as_bytes()).is_ok());
    }
}
