//! Exclusive XML Canonicalization 1.0, without comments
//! (<http://www.w3.org/2001/10/xml-exc-c14n#>), over the tree of [`super::dom`].
//!
//! The rules that matter, and that implementations get wrong: a namespace declaration is
//! output only on an element that visibly uses it (its own prefix or an attribute's) and only
//! if the nearest output ancestor did not already output the same binding; `xmlns=""` appears
//! only to undo a default namespace an output ancestor rendered; declarations are sorted by
//! prefix (default first) and attributes by (namespace URI, local name), unqualified first;
//! empty elements become start-end pairs; comments go; text and attribute values are escaped
//! with the specification's own small sets.

use std::collections::BTreeSet;

use super::dom::{Document, Element, Node};

pub const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// Namespace bindings in scope, innermost last.
pub type Scope = Vec<(String, String)>;

fn lookup<'a>(scope: &'a [(String, String)], prefix: &str) -> Option<&'a str> {
    scope.iter().rev().find(|(p, _)| p == prefix).map(|(_, u)| u.as_str())
}

/// The namespace URI of an element in `scope` (its own declarations already pushed).
pub fn element_ns<'a>(e: &Element, scope: &'a [(String, String)]) -> &'a str {
    lookup(scope, e.prefix.as_deref().unwrap_or("")).unwrap_or("")
}

fn escape_text(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

fn escape_attr(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

fn pi(target: &str, data: &str, out: &mut String) {
    out.push_str("<?");
    out.push_str(target);
    if !data.is_empty() {
        out.push(' ');
        out.push_str(data);
    }
    out.push_str("?>");
}

struct Canon<'x> {
    exclude: Option<&'x Element>,
    out: String,
}

impl Canon<'_> {
    fn element(&mut self, e: &Element, scope: &mut Scope, rendered: &mut Scope) {
        if self.exclude.is_some_and(|x| std::ptr::eq(x, e)) {
            return;
        }
        let scope_mark = scope.len();
        let rendered_mark = rendered.len();
        scope.extend(e.ns_decls.iter().cloned());

        let mut used = BTreeSet::new();
        used.insert(e.prefix.clone().unwrap_or_default());
        for a in &e.attrs {
            if let Some(p) = &a.prefix {
                used.insert(p.clone());
            }
        }
        let mut decls = Vec::new();
        for p in used {
            if p == "xml" {
                continue;
            }
            let uri = lookup(scope, &p).unwrap_or("").to_string();
            let before = lookup(rendered, &p).unwrap_or("");
            if p.is_empty() || !uri.is_empty() {
                if uri != before {
                    decls.push((p.clone(), uri.clone()));
                }
                rendered.push((p, uri));
            }
        }

        let qname = e.qname();
        self.out.push('<');
        self.out.push_str(&qname);
        for (p, uri) in &decls {
            if p.is_empty() {
                self.out.push_str(" xmlns=\"");
            } else {
                self.out.push_str(" xmlns:");
                self.out.push_str(p);
                self.out.push_str("=\"");
            }
            escape_attr(uri, &mut self.out);
            self.out.push('"');
        }
        let mut attrs: Vec<(&str, &str, String, &str)> = e
            .attrs
            .iter()
            .map(|a| {
                let ns = match a.prefix.as_deref() {
                    None => "",
                    Some("xml") => XML_NS,
                    Some(p) => lookup(scope, p).unwrap_or(""),
                };
                let q = match &a.prefix {
                    Some(p) => format!("{p}:{}", a.local),
                    None => a.local.clone(),
                };
                (ns, a.local.as_str(), q, a.value.as_str())
            })
            .collect();
        attrs.sort_by(|x, y| (x.0, x.1).cmp(&(y.0, y.1)));
        for (_, _, q, v) in attrs {
            self.out.push(' ');
            self.out.push_str(&q);
            self.out.push_str("=\"");
            escape_attr(v, &mut self.out);
            self.out.push('"');
        }
        self.out.push('>');
        for child in &e.children {
            match child {
                Node::Element(c) => self.element(c, scope, rendered),
                Node::Text(t) => escape_text(t, &mut self.out),
                Node::Comment(_) => {}
                Node::Pi { target, data } => pi(target, data, &mut self.out),
            }
        }
        self.out.push_str("</");
        self.out.push_str(&qname);
        self.out.push('>');
        scope.truncate(scope_mark);
        rendered.truncate(rendered_mark);
    }
}

/// The canonical form of a whole document, leaving out `exclude` (the enveloped signature).
pub fn document(doc: &Document, exclude: Option<&Element>) -> Vec<u8> {
    let mut c = Canon {
        exclude,
        out: String::new(),
    };
    for n in &doc.prolog {
        if let Node::Pi { target, data } = n {
            pi(target, data, &mut c.out);
            c.out.push('\n');
        }
    }
    c.element(&doc.root, &mut Vec::new(), &mut Vec::new());
    for n in &doc.epilog {
        if let Node::Pi { target, data } = n {
            c.out.push('\n');
            pi(target, data, &mut c.out);
        }
    }
    c.out.into_bytes()
}

/// The canonical form of the subtree at `e`, whose ancestors declared `ancestors_scope`.
pub fn subtree(e: &Element, ancestors_scope: &[(String, String)], exclude: Option<&Element>) -> Vec<u8> {
    let mut c = Canon {
        exclude,
        out: String::new(),
    };
    c.element(e, &mut ancestors_scope.to_vec(), &mut Vec::new());
    c.out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::super::dom::parse;
    use super::*;

    fn canon(src: &str) -> String {
        String::from_utf8(document(&parse(src.as_bytes()).unwrap(), None)).unwrap()
    }

    #[test]
    fn the_specification_examples_that_matter() {
        // Attributes sorted, empty element expanded, comments dropped, whitespace kept.
        assert_eq!(canon("<a z=\"1\" b='2'  ><!-- c --><e/>\n</a>"), "<a b=\"2\" z=\"1\"><e></e>\n</a>");
        // Unused declarations vanish; used ones move to where they are used.
        assert_eq!(
            canon("<a xmlns:x=\"urn:x\" xmlns:y=\"urn:y\"><x:b/></a>"),
            "<a><x:b xmlns:x=\"urn:x\"></x:b></a>"
        );
        // A binding already rendered by an output ancestor is not repeated.
        assert_eq!(
            canon("<x:a xmlns:x=\"urn:x\"><x:b xmlns:x=\"urn:x\"/></x:a>"),
            "<x:a xmlns:x=\"urn:x\"><x:b></x:b></x:a>"
        );
        // Default namespaces, and xmlns="" only to undo a rendered one.
        assert_eq!(
            canon("<a xmlns=\"urn:d\"><b xmlns=\"\"><c/></b></a>"),
            "<a xmlns=\"urn:d\"><b xmlns=\"\"><c></c></b></a>"
        );
        assert_eq!(canon("<a><b xmlns=\"\"/></a>"), "<a><b></b></a>");
        // Qualified attributes sort by namespace URI, after unqualified ones.
        assert_eq!(
            canon("<a xmlns:z=\"urn:a\" xmlns:b=\"urn:z\" b:x=\"1\" z:y=\"2\" c=\"3\"/>"),
            "<a xmlns:b=\"urn:z\" xmlns:z=\"urn:a\" c=\"3\" z:y=\"2\" b:x=\"1\"></a>"
        );
        // Escaping.
        assert_eq!(
            canon("<a t=\"&lt;&amp;&quot;&#x9;&#xA;\">&lt;&amp;&gt;&#xD;\"</a>"),
            "<a t=\"&lt;&amp;&quot;&#x9;&#xA;\">&lt;&amp;&gt;&#xD;\"</a>"
        );
        // Processing instructions outside the root keep their line breaks.
        assert_eq!(canon("<?xml version=\"1.0\"?>\n<?p d?>\n<a/>\n<?q?>"), "<?p d?>\n<a></a>\n<?q?>");
    }

    #[test]
    fn a_subtree_takes_its_namespaces_from_its_ancestors() {
        let d = parse(b"<r xmlns:ds=\"urn:ds\"><ds:S><ds:I a=\"1\"/></ds:S></r>").unwrap();
        let s = d.root.child_elements().next().unwrap();
        let scope = d.root.ns_decls.clone();
        assert_eq!(
            String::from_utf8(subtree(s, &scope, None)).unwrap(),
            "<ds:S xmlns:ds=\"urn:ds\"><ds:I a=\"1\"></ds:I></ds:S>"
        );
    }
}
