//! XML Canonicalization without comments, in its two flavours, over the tree of [`super::dom`]:
//! exclusive C14N 1.0 (<http://www.w3.org/2001/10/xml-exc-c14n#>, what the gateway signs with)
//! and inclusive C14N 1.0 (<http://www.w3.org/TR/2001/REC-xml-c14n-20010315>, the .NET
//! default, which banks' signers may use and the gateway must verify).
//!
//! The rules that matter, and that implementations get wrong:
//! - **Exclusive:** a namespace declaration is output only on an element that visibly uses it
//!   (its own prefix or an attribute's) and only if the nearest output ancestor did not already
//!   output the same binding; `xmlns=""` appears only to undo a default namespace an output
//!   ancestor rendered; `xml:*` attributes of ancestors are not inherited. With an
//!   `InclusiveNamespaces PrefixList` (Exclusive XML Canonicalization 1.0, section 3; Apache
//!   Santuario emits one), the listed prefixes (`#default` for the default namespace, written
//!   here as `""`) are treated as in inclusive C14N: a listed prefix in scope is rendered, used
//!   or not, wherever its binding differs from what the nearest output ancestor rendered (so
//!   at the apex of a subset too, where the ancestors' declarations land).
//! - **Inclusive:** the apex of the output (the root of a whole document, or `SignedInfo` inside
//!   a signature) renders *every* namespace in scope, including those declared on ancestors
//!   that are not output (a camt.054 `Document`'s default namespace lands on `SignedInfo`), and
//!   inherits the `xml:*` attributes (`xml:lang`, `xml:space`, ...) of those ancestors unless it
//!   has its own. Below the apex an element renders a declaration only where it changes what
//!   its parent had in scope (`xmlns=""` only to undo a non-empty default). An unused
//!   declaration is kept, unlike in exclusive.
//! - **Both:** declarations are sorted by prefix (default first) and attributes by (namespace
//!   URI, local name), unqualified first; empty elements become start-end pairs; comments go;
//!   text and attribute values are escaped with the specification's own small sets; the `xml`
//!   prefix is never declared.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::dom::{Attr, Document, Element, Node};

pub const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";
/// Exclusive XML Canonicalization 1.0, without comments.
pub const EXCLUSIVE: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
/// Canonical XML 1.0 (inclusive), without comments.
pub const INCLUSIVE: &str = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315";

/// Which canonicalization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Exclusive,
    Inclusive,
}

impl Method {
    /// The method named by an `Algorithm` URI; `None` for anything else (including the
    /// `#WithComments` variants, which the gateway does not accept).
    pub fn from_uri(uri: &str) -> Option<Method> {
        match uri {
            EXCLUSIVE => Some(Method::Exclusive),
            INCLUSIVE => Some(Method::Inclusive),
            _ => None,
        }
    }

    pub fn uri(self) -> &'static str {
        match self {
            Method::Exclusive => EXCLUSIVE,
            Method::Inclusive => INCLUSIVE,
        }
    }
}

/// Namespace bindings in scope, innermost last.
pub type Scope = Vec<(String, String)>;

/// What an apex element inherits from its ancestors that are not part of the output: their
/// namespace declarations and, for inclusive C14N, their `xml:*` attributes. Push the
/// ancestors outermost first.
#[derive(Debug, Clone, Default)]
pub struct Ancestry {
    pub namespaces: Scope,
    /// (local name, value) of `xml:*` attributes, outermost first; the innermost wins.
    pub xml_attrs: Vec<(String, String)>,
}

impl Ancestry {
    pub fn push(&mut self, e: &Element) {
        self.namespaces.extend(e.ns_decls.iter().cloned());
        for a in &e.attrs {
            if a.prefix.as_deref() == Some("xml") {
                self.xml_attrs.push((a.local.clone(), a.value.clone()));
            }
        }
    }
}

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

/// Namespace bindings in scope as a map from prefix to a stack of URIs, innermost last: a
/// lookup costs the same however many declarations are in scope, so a document with many of
/// them cannot make canonicalization quadratic.
#[derive(Debug, Default)]
pub(crate) struct Bindings {
    map: HashMap<String, Vec<String>>,
}

impl Bindings {
    pub(crate) fn from_scope(scope: &[(String, String)]) -> Self {
        let mut b = Bindings::default();
        for (p, u) in scope {
            b.push(p, u);
        }
        b
    }

    pub(crate) fn push(&mut self, prefix: &str, uri: &str) {
        self.map.entry(prefix.to_string()).or_default().push(uri.to_string());
    }

    pub(crate) fn pop(&mut self, prefix: &str) {
        if let Some(v) = self.map.get_mut(prefix) {
            v.pop();
        }
    }

    pub(crate) fn get(&self, prefix: &str) -> Option<&str> {
        self.map.get(prefix).and_then(|v| v.last()).map(String::as_str)
    }

    /// Pushes an element's own declarations.
    pub(crate) fn enter(&mut self, e: &Element) {
        for (p, u) in &e.ns_decls {
            self.push(p, u);
        }
    }

    /// Undoes [`Bindings::enter`].
    pub(crate) fn leave(&mut self, e: &Element) {
        for (p, _) in e.ns_decls.iter().rev() {
            self.pop(p);
        }
    }

    /// The namespace URI of `e` (its own declarations already entered).
    pub(crate) fn element_ns(&self, e: &Element) -> &str {
        self.get(e.prefix.as_deref().unwrap_or("")).unwrap_or("")
    }
}

struct Canon<'x> {
    method: Method,
    /// Exclusive only: the `InclusiveNamespaces PrefixList`, `""` for `#default`.
    inclusive_prefixes: &'x [String],
    exclude: Option<&'x Element>,
    /// `xml:*` attributes the apex inherits (inclusive only).
    inherited_xml: &'x [(String, String)],
    out: String,
}

impl Canon<'_> {
    /// Exclusive: the visibly used prefixes whose binding differs from what an output ancestor
    /// rendered. Records them in `rendered` (and in `pushed`, to undo).
    /// The prefixes of `inclusive` (the PrefixList) count as used wherever they are in scope.
    fn exclusive_decls(
        e: &Element,
        scope: &Bindings,
        rendered: &mut Bindings,
        pushed: &mut Vec<String>,
        inclusive: &[String],
    ) -> Vec<(String, String)> {
        let mut used = BTreeSet::new();
        used.insert(e.prefix.clone().unwrap_or_default());
        used.extend(inclusive.iter().cloned());
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
            let uri = scope.get(&p).unwrap_or("").to_string();
            if p.is_empty() || !uri.is_empty() {
                if uri != rendered.get(&p).unwrap_or("") {
                    decls.push((p.clone(), uri.clone()));
                }
                rendered.push(&p, &uri);
                pushed.push(p);
            }
        }
        decls
    }

    /// Inclusive: at the apex every binding in scope (an empty default is no binding); below
    /// it, the element's own declarations that change what its parent, which is always output,
    /// had in scope. Called before the element's own declarations are entered.
    fn inclusive_decls(e: &Element, parent: &Bindings, apex: bool) -> Vec<(String, String)> {
        let mut decls: BTreeMap<String, String> = BTreeMap::new();
        if apex {
            for (p, stack) in &parent.map {
                if let Some(u) = stack.last() {
                    decls.insert(p.clone(), u.clone());
                }
            }
            for (p, u) in &e.ns_decls {
                decls.insert(p.clone(), u.clone());
            }
            decls.retain(|p, u| p != "xml" && !u.is_empty());
        } else {
            for (p, u) in &e.ns_decls {
                if p != "xml" && (p.is_empty() || !u.is_empty()) && parent.get(p).unwrap_or("") != u {
                    decls.insert(p.clone(), u.clone());
                }
            }
        }
        decls.into_iter().collect()
    }

    fn element(&mut self, e: &Element, scope: &mut Bindings, rendered: &mut Bindings, apex: bool) {
        if self.exclude.is_some_and(|x| std::ptr::eq(x, e)) {
            return;
        }
        let inclusive = match self.method {
            Method::Inclusive => Some(Self::inclusive_decls(e, scope, apex)),
            Method::Exclusive => None,
        };
        scope.enter(e);
        let mut pushed = Vec::new();
        let decls = match inclusive {
            Some(d) => d,
            None => Self::exclusive_decls(e, scope, rendered, &mut pushed, self.inclusive_prefixes),
        };

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
        // Inclusive C14N of a document subset: the apex carries the xml:* attributes of its
        // omitted ancestors, unless it has its own of the same name.
        let mut inherited: Vec<Attr> = Vec::new();
        if apex && self.method == Method::Inclusive {
            for (local, value) in self.inherited_xml.iter().rev() {
                let own = e.attrs.iter().any(|a| a.prefix.as_deref() == Some("xml") && &a.local == local);
                if !own && !inherited.iter().any(|a| &a.local == local) {
                    inherited.push(Attr {
                        prefix: Some("xml".into()),
                        local: local.clone(),
                        value: value.clone(),
                    });
                }
            }
        }
        let mut attrs: Vec<(&str, &str, String, &str)> = e
            .attrs
            .iter()
            .chain(inherited.iter())
            .map(|a| {
                let ns = match a.prefix.as_deref() {
                    None => "",
                    Some("xml") => XML_NS,
                    Some(p) => scope.get(p).unwrap_or(""),
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
                Node::Element(c) => self.element(c, scope, rendered, false),
                Node::Text(t) => escape_text(t, &mut self.out),
                Node::Comment(_) => {}
                Node::Pi { target, data } => pi(target, data, &mut self.out),
            }
        }
        self.out.push_str("</");
        self.out.push_str(&qname);
        self.out.push('>');
        for p in pushed.iter().rev() {
            rendered.pop(p);
        }
        scope.leave(e);
    }
}

/// The canonical form of a whole document (`URI=""`), leaving out `exclude` (the enveloped
/// signature), by `method`.
pub fn document_with(method: Method, doc: &Document, exclude: Option<&Element>) -> Vec<u8> {
    document_with_prefixes(method, &[], doc, exclude)
}

/// [`document_with`], with the exclusive method's `InclusiveNamespaces PrefixList`
/// (`inclusive_prefixes`, `""` for `#default`; ignored by inclusive C14N, where every prefix is).
pub fn document_with_prefixes(method: Method, inclusive_prefixes: &[String], doc: &Document, exclude: Option<&Element>) -> Vec<u8> {
    let mut c = Canon {
        method,
        inclusive_prefixes,
        exclude,
        inherited_xml: &[],
        out: String::new(),
    };
    for n in &doc.prolog {
        if let Node::Pi { target, data } = n {
            pi(target, data, &mut c.out);
            c.out.push('\n');
        }
    }
    c.element(&doc.root, &mut Bindings::default(), &mut Bindings::default(), true);
    for n in &doc.epilog {
        if let Node::Pi { target, data } = n {
            c.out.push('\n');
            pi(target, data, &mut c.out);
        }
    }
    c.out.into_bytes()
}

/// The canonical form of the subtree at `e` (a document subset whose apex is `e`), whose
/// omitted ancestors are described by `ancestry`, by `method`.
pub fn subtree_with(method: Method, e: &Element, ancestry: &Ancestry, exclude: Option<&Element>) -> Vec<u8> {
    subtree_with_prefixes(method, &[], e, ancestry, exclude)
}

/// [`subtree_with`], with the exclusive method's `InclusiveNamespaces PrefixList`.
pub fn subtree_with_prefixes(
    method: Method,
    inclusive_prefixes: &[String],
    e: &Element,
    ancestry: &Ancestry,
    exclude: Option<&Element>,
) -> Vec<u8> {
    let mut c = Canon {
        method,
        inclusive_prefixes,
        exclude,
        inherited_xml: &ancestry.xml_attrs,
        out: String::new(),
    };
    c.element(e, &mut Bindings::from_scope(&ancestry.namespaces), &mut Bindings::default(), true);
    c.out.into_bytes()
}

/// Exclusive canonical form of a whole document, leaving out `exclude`.
pub fn document(doc: &Document, exclude: Option<&Element>) -> Vec<u8> {
    document_with(Method::Exclusive, doc, exclude)
}

/// Exclusive canonical form of the subtree at `e`, whose ancestors declared `ancestors_scope`.
pub fn subtree(e: &Element, ancestors_scope: &[(String, String)], exclude: Option<&Element>) -> Vec<u8> {
    let ancestry = Ancestry {
        namespaces: ancestors_scope.to_vec(),
        xml_attrs: Vec::new(),
    };
    subtree_with(Method::Exclusive, e, &ancestry, exclude)
}

#[cfg(test)]
mod tests {
    use super::super::dom::parse;
    use super::*;

    fn canon(src: &str) -> String {
        String::from_utf8(document(&parse(src.as_bytes()).unwrap(), None)).unwrap()
    }

    fn inclusive(src: &str) -> String {
        String::from_utf8(document_with(Method::Inclusive, &parse(src.as_bytes()).unwrap(), None)).unwrap()
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

    /// Canonical XML 1.0, section 3.3 "Start and End Tags", without the DTD (the gateway
    /// refuses DOCTYPEs, so e9 has no defaulted attribute).
    #[test]
    fn inclusive_section_3_3_start_and_end_tags() {
        let input = r#"<doc>
   <e1   />
   <e2   ></e2>
   <e3   name = "elem3"   id="elem3"   />
   <e4   name="elem4"   id="elem4"   ></e4>
   <e5 a:attr="out" b:attr="sorted" attr2="all" attr="I'm"
      xmlns:b="http://www.ietf.org"
      xmlns:a="http://www.w3.org"
      xmlns="http://example.org"/>
   <e6 xmlns="" xmlns:a="http://www.w3.org">
      <e7 xmlns="http://www.ietf.org">
         <e8 xmlns="" xmlns:a="http://www.w3.org">
            <e9 xmlns="" xmlns:a="http://www.ietf.org"/>
         </e8>
      </e7>
   </e6>
</doc>"#;
        let expected = r#"<doc>
   <e1></e1>
   <e2></e2>
   <e3 id="elem3" name="elem3"></e3>
   <e4 id="elem4" name="elem4"></e4>
   <e5 xmlns="http://example.org" xmlns:a="http://www.w3.org" xmlns:b="http://www.ietf.org" attr="I'm" attr2="all" b:attr="sorted" a:attr="out"></e5>
   <e6 xmlns:a="http://www.w3.org">
      <e7 xmlns="http://www.ietf.org">
         <e8 xmlns="">
            <e9 xmlns:a="http://www.ietf.org"></e9>
         </e8>
      </e7>
   </e6>
</doc>"#;
        assert_eq!(inclusive(input), expected);
    }

    #[test]
    fn inclusive_keeps_unused_declarations_where_exclusive_drops_them() {
        let src = "<a xmlns:x=\"urn:x\" xmlns:y=\"urn:y\"><x:b xmlns:x=\"urn:x\"/><c xmlns:y=\"urn:other\"/></a>";
        assert_eq!(
            inclusive(src),
            "<a xmlns:x=\"urn:x\" xmlns:y=\"urn:y\"><x:b></x:b><c xmlns:y=\"urn:other\"></c></a>"
        );
        assert_eq!(canon(src), "<a><x:b xmlns:x=\"urn:x\"></x:b><c></c></a>");
        // An explicit declaration of the xml prefix is never output, and xmlns="" at the apex
        // undoes nothing.
        assert_eq!(
            inclusive("<a xmlns=\"\" xmlns:xml=\"http://www.w3.org/XML/1998/namespace\" xml:lang=\"vi\"/>"),
            "<a xml:lang=\"vi\"></a>"
        );
    }

    /// SignedInfo inside ds:Signature inside a camt.054 Document: the inclusive apex carries
    /// every namespace of its ancestors (the Document's default one too) and their xml:*
    /// attributes; the exclusive one carries only what it uses.
    #[test]
    fn an_inclusive_subset_inherits_namespaces_and_xml_attributes() {
        let src = "<Document xmlns=\"urn:camt\" xmlns:xsi=\"urn:xsi\" xml:lang=\"vi\" xml:space=\"default\">\
                   <ds:Signature xmlns:ds=\"urn:ds\" xml:space=\"preserve\">\
                   <ds:SignedInfo Id=\"si\"><ds:M A=\"1\"/><x xmlns=\"\"/></ds:SignedInfo></ds:Signature></Document>";
        let d = parse(src.as_bytes()).unwrap();
        let sig = d.root.child_elements().next().unwrap();
        let si = sig.child_elements().next().unwrap();
        let mut ancestry = Ancestry::default();
        ancestry.push(&d.root);
        ancestry.push(sig);
        assert_eq!(
            String::from_utf8(subtree_with(Method::Inclusive, si, &ancestry, None)).unwrap(),
            "<ds:SignedInfo xmlns=\"urn:camt\" xmlns:ds=\"urn:ds\" xmlns:xsi=\"urn:xsi\" Id=\"si\" xml:lang=\"vi\" xml:space=\"preserve\">\
             <ds:M A=\"1\"></ds:M><x xmlns=\"\"></x></ds:SignedInfo>"
        );
        assert_eq!(
            String::from_utf8(subtree_with(Method::Exclusive, si, &ancestry, None)).unwrap(),
            "<ds:SignedInfo xmlns:ds=\"urn:ds\" Id=\"si\"><ds:M A=\"1\"></ds:M><x></x></ds:SignedInfo>"
        );
        // The apex's own xml:* attribute wins over an ancestor's.
        let own = parse(b"<r xml:lang=\"vi\"><s xml:lang=\"en\"/></r>").unwrap();
        let mut a = Ancestry::default();
        a.push(&own.root);
        let s = own.root.child_elements().next().unwrap();
        assert_eq!(
            String::from_utf8(subtree_with(Method::Inclusive, s, &a, None)).unwrap(),
            "<s xml:lang=\"en\"></s>"
        );
    }

    /// Exclusive C14N 1.0 section 3: listed prefixes are rendered as inclusive C14N would,
    /// used or not; `#default` is the default namespace; unlisted unused ones still go.
    #[test]
    fn a_prefix_list_renders_the_listed_prefixes_as_inclusive() {
        let src = r#"<r xmlns="urn:d" xmlns:a="urn:a" xmlns:b="urn:b" xmlns:c="urn:c"><a:x t="b:q"><y xmlns:a="urn:a2"/></a:x></r>"#;
        let doc = parse(src.as_bytes()).unwrap();
        let with = |list: &[&str]| {
            let list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
            String::from_utf8(document_with_prefixes(Method::Exclusive, &list, &doc, None)).unwrap()
        };
        assert_eq!(with(&[]), r#"<r xmlns="urn:d"><a:x xmlns:a="urn:a" t="b:q"><y></y></a:x></r>"#);
        assert_eq!(
            with(&["b", "a"]),
            r#"<r xmlns="urn:d" xmlns:a="urn:a" xmlns:b="urn:b"><a:x t="b:q"><y xmlns:a="urn:a2"></y></a:x></r>"#
        );
        // #default on an element that does not use the default namespace.
        let doc2 = parse(r#"<p:r xmlns:p="urn:p" xmlns="urn:d"><p:s/></p:r>"#.as_bytes()).unwrap();
        let list = vec![String::new()];
        assert_eq!(
            String::from_utf8(document_with_prefixes(Method::Exclusive, &list, &doc2, None)).unwrap(),
            r#"<p:r xmlns="urn:d" xmlns:p="urn:p"><p:s></p:s></p:r>"#
        );
        // A subset's apex renders the listed prefixes its omitted ancestors declared.
        let si = doc.root.child_elements().next().unwrap();
        let mut ancestry = Ancestry::default();
        ancestry.push(&doc.root);
        let list = vec!["c".to_string()];
        assert_eq!(
            String::from_utf8(subtree_with_prefixes(Method::Exclusive, &list, si, &ancestry, None)).unwrap(),
            r#"<a:x xmlns:a="urn:a" xmlns:c="urn:c" t="b:q"><y xmlns="urn:d"></y></a:x>"#
        );
    }

    #[test]
    fn the_excluded_signature_leaves_its_surrounding_text() {
        let src = "<r xmlns=\"urn:r\">\n  <a/>\n  <ds:Signature xmlns:ds=\"urn:ds\"><ds:X/></ds:Signature>\n</r>";
        let d = parse(src.as_bytes()).unwrap();
        let sig = d.root.child_elements().nth(1).unwrap();
        for m in [Method::Exclusive, Method::Inclusive] {
            assert_eq!(
                String::from_utf8(document_with(m, &d, Some(sig))).unwrap(),
                "<r xmlns=\"urn:r\">\n  <a></a>\n  \n</r>",
                "{m:?}"
            );
        }
        assert_eq!(Method::from_uri(INCLUSIVE), Some(Method::Inclusive));
        assert_eq!(Method::from_uri(EXCLUSIVE), Some(Method::Exclusive));
        assert_eq!(
            Method::from_uri("http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments"),
            None
        );
    }
}
