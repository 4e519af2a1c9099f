//! The one way Gatehouse writes XML for other parties (DESIGN §10: "every value written
//! into XML is escaped"): Responses, assertions, logout messages, metadata.
//!
//! An [`Element`] holds its values as given and escapes every attribute value and text
//! node when it is written, so no call site can forget to. Element and attribute names are
//! `&'static str`: only our own constants, never something a request or a stored field
//! could supply. There is no way to add raw markup.
//!
//! Why it exists: samael 0.0.22 writes NameID, Issuer, Audience and AttributeValue text
//! unescaped (`BytesText::from_escaped`), so a display name that closed its
//! AttributeValue could add a role of its choosing to an IdP-signed assertion, and an
//! email address with `&` made the Response unsignable.

/// An XML element: name, attributes in order, then its children.
#[derive(Debug, Clone)]
pub struct Element {
    name: &'static str,
    attributes: Vec<(&'static str, String)>,
    content: Vec<Node>,
}

#[derive(Debug, Clone)]
enum Node {
    Element(Element),
    Text(String),
}

impl Element {
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            attributes: Vec::new(),
            content: Vec::new(),
        }
    }

    /// Adds an attribute; its value is escaped when written.
    pub fn attr(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.attributes.push((name, value.into()));
        self
    }

    /// Adds the attribute when there is a value.
    pub fn attr_opt(self, name: &'static str, value: Option<impl Into<String>>) -> Self {
        match value {
            Some(v) => self.attr(name, v),
            None => self,
        }
    }

    /// Adds a text node; it is escaped when written.
    pub fn text(mut self, value: impl Into<String>) -> Self {
        self.content.push(Node::Text(value.into()));
        self
    }

    pub fn child(mut self, child: Element) -> Self {
        self.content.push(Node::Element(child));
        self
    }

    /// Adds the child when there is one.
    pub fn child_opt(self, child: Option<Element>) -> Self {
        match child {
            Some(c) => self.child(c),
            None => self,
        }
    }

    pub fn children(mut self, children: impl IntoIterator<Item = Element>) -> Self {
        self.content.extend(children.into_iter().map(Node::Element));
        self
    }

    /// The element as XML, without a declaration.
    pub fn to_xml(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        out.push('<');
        out.push_str(self.name);
        for (name, value) in &self.attributes {
            out.push(' ');
            out.push_str(name);
            out.push_str("=\"");
            escape_into(out, value, Context::Attribute);
            out.push('"');
        }
        if self.content.is_empty() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        for node in &self.content {
            match node {
                Node::Element(e) => e.write(out),
                Node::Text(t) => escape_into(out, t, Context::Text),
            }
        }
        out.push_str("</");
        out.push_str(self.name);
        out.push('>');
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    Text,
    Attribute,
}

/// XML 1.0 §2.2 `Char`: what a document may contain at all, even as a reference.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
}

/// Escapes `value` so a parser reads back exactly it: markup characters as entities, and
/// the characters a parser would normalise (CR everywhere, tab and line feed in attribute
/// values, XML 1.0 §2.11 and §3.3.3) as character references. A character XML 1.0 cannot
/// carry at all (most C0 controls, U+FFFE, U+FFFF) becomes U+FFFD: values stored before
/// the domain refused them still give a well-formed, signable document.
fn escape_into(out: &mut String, value: &str, context: Context) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            // `]]>` may not appear in text: escaping every `>` rules it out.
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            '"' if context == Context::Attribute => out.push_str("&quot;"),
            '\'' if context == Context::Attribute => out.push_str("&apos;"),
            '\t' if context == Context::Attribute => out.push_str("&#9;"),
            '\n' if context == Context::Attribute => out.push_str("&#10;"),
            c if !is_xml_char(c) => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn markup_in_text_and_attributes_stays_data() {
        let xml = Element::new("a")
            .attr("v", r#"x" onload="y' <&>"#)
            .text("</a><b>&amp;]]>")
            .to_xml();
        assert_eq!(
            xml,
            r#"<a v="x&quot; onload=&quot;y&apos; &lt;&amp;&gt;">&lt;/a&gt;&lt;b&gt;&amp;amp;]]&gt;</a>"#
        );
    }

    #[test]
    fn characters_a_parser_would_normalise_are_references() {
        let xml = Element::new("a")
            .attr("v", "1\t2\n3\r")
            .text("4\t5\n6\r")
            .to_xml();
        assert_eq!(xml, "<a v=\"1&#9;2&#10;3&#13;\">4\t5\n6&#13;</a>");
    }

    #[test]
    fn characters_xml_cannot_carry_are_replaced() {
        let xml = Element::new("a")
            .text("x\u{0}\u{7}\u{1b}\u{fffe}y")
            .to_xml();
        assert_eq!(xml, "<a>x\u{fffd}\u{fffd}\u{fffd}\u{fffd}y</a>");
    }

    #[test]
    fn empty_elements_close_themselves_and_children_nest_in_order() {
        let xml = Element::new("p:r")
            .attr_opt("a", None::<String>)
            .child(Element::new("p:x"))
            .child_opt(Some(Element::new("p:y").text("1")))
            .children([Element::new("p:z")])
            .to_xml();
        assert_eq!(xml, "<p:r><p:x/><p:y>1</p:y><p:z/></p:r>");
    }

    /// What a conforming parser reads back: entities and character references resolved.
    fn unescape(s: &str) -> String {
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find('&') {
            out.push_str(&rest[..i]);
            let end = rest[i..].find(';').unwrap() + i;
            out.push(match &rest[i + 1..end] {
                "amp" => '&',
                "lt" => '<',
                "gt" => '>',
                "quot" => '"',
                "apos" => '\'',
                n => char::from_u32(n.trim_start_matches('#').parse().unwrap()).unwrap(),
            });
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        out
    }

    proptest! {
        #[test]
        fn any_value_reads_back_as_itself_where_xml_can_carry_it(value in any::<String>()) {
            let xml = Element::new("a").attr("v", value.clone()).text(value.clone()).to_xml();
            let expected: String = value
                .chars()
                .map(|c| if is_xml_char(c) { c } else { '\u{fffd}' })
                .collect();
            let (open, rest) = xml.split_once("\">").unwrap();
            let attribute = open.strip_prefix("<a v=\"").unwrap();
            let text = rest.strip_suffix("</a>").unwrap();
            // No markup survives: the only `<` is the element's own.
            prop_assert!(!attribute.contains(['<', '"', '\n', '\t', '\r']));
            prop_assert!(!text.contains(['<', '>', '\r']));
            prop_assert_eq!(unescape(attribute), expected.clone());
            prop_assert_eq!(unescape(text), expected);
        }
    }
}
