//! The markdown subset messages may use: bold, italic, strike, inline code, code blocks, links
//! and quotes. Parsed with pulldown-cmark into plain blocks and spans that a front end draws as
//! it likes. Rendering is safe by construction: nothing is fetched (an image is its text and
//! address), HTML is shown as text, control characters are dropped, links are kept only for
//! `http`, `https` and `mailto`, and quotes nest at most [`MAX_QUOTE_DEPTH`] deep.

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

/// Quotes deeper than this are drawn at this depth.
pub const MAX_QUOTE_DEPTH: u8 = 8;

/// How a span of text is set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Style {
    /// Bold.
    pub bold: bool,
    /// Italic.
    pub italic: bool,
    /// Struck through.
    pub strike: bool,
    /// Inline code (monospace).
    pub code: bool,
}

/// A run of text in one style, maybe a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// The text (no control characters except line breaks).
    pub text: String,
    /// Its style.
    pub style: Style,
    /// Where it links to (only `http`, `https` and `mailto` addresses).
    pub link: Option<String>,
}

/// A block of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    /// Text, inside `quote_depth` quotes.
    Paragraph {
        /// How many quotes it sits in (0 for none).
        quote_depth: u8,
        /// Its spans.
        spans: Vec<Span>,
    },
    /// A code block, shown as is (monospace, no styling inside).
    Code {
        /// How many quotes it sits in.
        quote_depth: u8,
        /// Its text.
        text: String,
    },
}

fn clean(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .collect()
}

fn safe_link(url: &str) -> Option<String> {
    let lower = url.trim().to_ascii_lowercase();
    let allowed = ["http://", "https://", "mailto:"]
        .iter()
        .any(|scheme| lower.starts_with(scheme));
    (allowed && !url.chars().any(char::is_control)).then(|| url.trim().to_owned())
}

/// Builds blocks from parser events, keeping the open styles, link and quote depth.
#[derive(Default)]
struct Builder {
    blocks: Vec<Block>,
    spans: Vec<Span>,
    style: Style,
    link: Option<String>,
    /// Links and images whose address is shown after their text.
    shown_addresses: Vec<Option<String>>,
    quote_depth: u32,
    code_block: Option<String>,
    list_item_start: bool,
}

impl Builder {
    fn depth(&self) -> u8 {
        self.quote_depth.min(u32::from(MAX_QUOTE_DEPTH)) as u8
    }

    fn push_text(&mut self, text: &str, code: bool) {
        let text = clean(text);
        if text.is_empty() {
            return;
        }
        if let Some(block) = &mut self.code_block {
            block.push_str(&text);
            return;
        }
        let mut text = text;
        if std::mem::take(&mut self.list_item_start) {
            text = format!("• {text}");
        }
        let style = Style { code, ..self.style };
        match self.spans.last_mut() {
            Some(last) if last.style == style && last.link == self.link => {
                last.text.push_str(&text)
            }
            _ => self.spans.push(Span {
                text,
                style,
                link: self.link.clone(),
            }),
        }
    }

    fn end_paragraph(&mut self) {
        if !self.spans.is_empty() {
            self.blocks.push(Block::Paragraph {
                quote_depth: self.depth(),
                spans: std::mem::take(&mut self.spans),
            });
        }
    }

    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => match tag {
                Tag::Strong => self.style.bold = true,
                Tag::Emphasis => self.style.italic = true,
                Tag::Strikethrough => self.style.strike = true,
                Tag::Link { dest_url, .. } => {
                    self.link = safe_link(&dest_url);
                    self.shown_addresses.push(None);
                }
                Tag::Image { dest_url, .. } => {
                    // Never fetched: its description, then its address.
                    self.shown_addresses.push(Some(dest_url.to_string()));
                }
                Tag::BlockQuote(_) => {
                    self.end_paragraph();
                    self.quote_depth += 1;
                }
                Tag::CodeBlock(_) => {
                    self.end_paragraph();
                    self.code_block = Some(String::new());
                }
                Tag::Item => {
                    self.end_paragraph();
                    self.list_item_start = true;
                }
                Tag::Heading { .. } => {
                    self.end_paragraph();
                    self.style.bold = true;
                }
                _ => {}
            },
            Event::End(tag) => match tag {
                TagEnd::Strong => self.style.bold = false,
                TagEnd::Emphasis => self.style.italic = false,
                TagEnd::Strikethrough => self.style.strike = false,
                TagEnd::Link => {
                    self.link = None;
                    self.shown_addresses.pop();
                }
                TagEnd::Image => {
                    if let Some(Some(address)) = self.shown_addresses.pop() {
                        self.push_text(&format!(" <{address}>"), false);
                    }
                }
                TagEnd::BlockQuote(_) => {
                    self.end_paragraph();
                    self.quote_depth = self.quote_depth.saturating_sub(1);
                }
                TagEnd::CodeBlock => {
                    if let Some(text) = self.code_block.take() {
                        self.blocks.push(Block::Code {
                            quote_depth: self.depth(),
                            text: text.trim_end_matches('\n').to_owned(),
                        });
                    }
                }
                TagEnd::Heading(_) => {
                    self.style.bold = false;
                    self.end_paragraph();
                }
                TagEnd::Paragraph | TagEnd::Item => self.end_paragraph(),
                _ => {}
            },
            Event::Text(text) | Event::Html(text) | Event::InlineHtml(text) => {
                self.push_text(&text, false);
            }
            Event::Code(text) => self.push_text(&text, true),
            Event::SoftBreak | Event::HardBreak => self.push_text("\n", false),
            Event::Rule => {
                self.end_paragraph();
                self.push_text("———", false);
                self.end_paragraph();
            }
            _ => {}
        }
    }
}

/// The blocks of a message written in the markdown subset.
pub fn parse(text: &str) -> Vec<Block> {
    let mut builder = Builder::default();
    for event in Parser::new_ext(text, Options::ENABLE_STRIKETHROUGH) {
        builder.event(event);
    }
    builder.end_paragraph();
    builder.blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(text: &str, style: Style) -> Span {
        Span {
            text: text.into(),
            style,
            link: None,
        }
    }

    fn paragraph(spans: Vec<Span>) -> Block {
        Block::Paragraph {
            quote_depth: 0,
            spans,
        }
    }

    const PLAIN: Style = Style {
        bold: false,
        italic: false,
        strike: false,
        code: false,
    };

    #[test]
    fn the_subset_renders_to_styled_spans() {
        let bold = Style {
            bold: true,
            ..PLAIN
        };
        let table: [(&str, Vec<Block>); 6] = [
            (
                "plain words",
                vec![paragraph(vec![span("plain words", PLAIN)])],
            ),
            (
                "**bold** and *it* and ~~gone~~ and `x+1`",
                vec![paragraph(vec![
                    span("bold", bold),
                    span(" and ", PLAIN),
                    span(
                        "it",
                        Style {
                            italic: true,
                            ..PLAIN
                        },
                    ),
                    span(" and ", PLAIN),
                    span(
                        "gone",
                        Style {
                            strike: true,
                            ..PLAIN
                        },
                    ),
                    span(" and ", PLAIN),
                    span(
                        "x+1",
                        Style {
                            code: true,
                            ..PLAIN
                        },
                    ),
                ])],
            ),
            (
                "```\nfn main() {}\n```",
                vec![Block::Code {
                    quote_depth: 0,
                    text: "fn main() {}".into(),
                }],
            ),
            (
                "> quoted\n\nafter",
                vec![
                    Block::Paragraph {
                        quote_depth: 1,
                        spans: vec![span("quoted", PLAIN)],
                    },
                    paragraph(vec![span("after", PLAIN)]),
                ],
            ),
            (
                "[docs](https://example.org/a) [bad](javascript:alert(1))",
                vec![paragraph(vec![
                    Span {
                        text: "docs".into(),
                        style: PLAIN,
                        link: Some("https://example.org/a".into()),
                    },
                    span(" bad", PLAIN),
                ])],
            ),
            (
                "![cat](http://tracker.example/pixel.png) <b>hi</b>",
                vec![paragraph(vec![span(
                    "cat <http://tracker.example/pixel.png> <b>hi</b>",
                    PLAIN,
                )])],
            ),
        ];
        for (input, expected) in table {
            assert_eq!(parse(input), expected, "{input}");
        }
    }

    #[test]
    fn hostile_input_stays_bounded_and_clean() {
        let deep_quote = format!("{}deep", "> ".repeat(10_000));
        let blocks = parse(&deep_quote);
        assert_eq!(
            blocks,
            [Block::Paragraph {
                quote_depth: MAX_QUOTE_DEPTH,
                spans: vec![span("deep", PLAIN)],
            }]
        );
        let stars = "*".repeat(50_000) + "x";
        let brackets = "[".repeat(50_000) + "x";
        let long_line = "word ".repeat(100_000);
        let controls = "bell\u{7} escape\u{1b}[31m nul\u{0} del\u{7f}";
        for input in [stars.as_str(), &brackets, &long_line, controls] {
            for block in parse(input) {
                let texts: Vec<String> = match block {
                    Block::Paragraph { spans, .. } => spans.into_iter().map(|s| s.text).collect(),
                    Block::Code { text, .. } => vec![text],
                };
                for text in texts {
                    assert!(!text.chars().any(|c| c.is_control() && c != '\n'));
                }
            }
        }
        assert_eq!(
            parse(controls),
            [paragraph(vec![span("bell escape[31m nul del", PLAIN)])]
        );
    }
}
