//! `<hx-partial>` blocks: how one unnamed SSE message updates any region of the page.

use std::fmt::Write;

/// How a partial lands in its target (htmx's `hx-swap` values that Herald uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Swap {
    InnerHtml,
    OuterHtml,
    BeforeEnd,
    AfterBegin,
    AfterEnd,
    Delete,
}

impl Swap {
    pub fn as_str(self) -> &'static str {
        match self {
            Swap::InnerHtml => "innerHTML",
            Swap::OuterHtml => "outerHTML",
            Swap::BeforeEnd => "beforeend",
            Swap::AfterBegin => "afterbegin",
            Swap::AfterEnd => "afterend",
            Swap::Delete => "delete",
        }
    }
}

/// Appends a partial that swaps `html` into the element with id `target`.
///
/// `target` is always a Herald-chosen element id, never user input, so it is written as is.
pub fn push_partial(out: &mut String, target: &str, swap: Swap, html: &str) {
    let _ = write!(
        out,
        "<hx-partial hx-target=\"#{target}\" hx-swap=\"{}\">{html}</hx-partial>",
        swap.as_str()
    );
}

pub fn partial(target: &str, swap: Swap, html: &str) -> String {
    let mut out = String::with_capacity(html.len() + 64);
    push_partial(&mut out, target, swap, html);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_html_with_target_and_swap() {
        assert_eq!(
            partial("offers-body", Swap::AfterBegin, "<tr></tr>"),
            r##"<hx-partial hx-target="#offers-body" hx-swap="afterbegin"><tr></tr></hx-partial>"##
        );
    }
}
