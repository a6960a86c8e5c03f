//! One-item changes to a list region: the fewest partials that turn the list a page shows into
//! the list a fresh render shows, so a change re-sends the elements it touches, not the list.
//!
//! htmx finds every target of a message before it swaps any, so each partial here aims at an
//! element the page had before the message: new elements that sit together go in one partial
//! after the element that precedes them (or at the start of the region), and those inserts come
//! before the replacements, since an element replaced in place is no longer there to insert
//! after.
//!
//! The list before a change must be the one pages show, so a change reads it under
//! `store::ListStore::hold_list`. The offers' table needs no diff: its store says which row a
//! create pushes out or a delete pulls in (under the same hold), without reading the list.

use std::collections::HashSet;

use super::partial::{Swap, push_partial};

/// An item a list region shows as one element of its own.
pub trait Listed {
    /// The id of the item's element.
    fn element_id(&self) -> String;
    /// The item's element.
    fn element(&self) -> String;
}

/// A list region's HTML: its items' elements, in order.
pub fn list_html<T: Listed>(items: &[T]) -> String {
    items.iter().map(Listed::element).collect()
}

/// The ids of the elements a page shows for `items`, in order.
pub fn list_ids<T: Listed>(items: &[T]) -> Vec<String> {
    items.iter().map(Listed::element_id).collect()
}

/// The partials that turn region `region`, showing elements `before` (their element ids, in
/// order), into one showing `after`: elements gone are deleted, new ones inserted where `after`
/// has them, and `changed` (an element id), if it stays, replaced. Elements found in both keep
/// their content; if they are not in the same order, the region is sent whole.
pub fn list_changes<T: Listed>(
    region: &str,
    before: &[String],
    after: &[T],
    changed: Option<&str>,
) -> String {
    let after_ids = list_ids(after);
    let was: HashSet<&str> = before.iter().map(String::as_str).collect();
    let is: HashSet<&str> = after_ids.iter().map(String::as_str).collect();
    let stayed_before = before.iter().filter(|id| is.contains(id.as_str()));
    let stayed_after = after_ids.iter().filter(|id| was.contains(id.as_str()));
    let mut html = String::new();
    if !stayed_before.eq(stayed_after) {
        push_partial(&mut html, region, Swap::InnerHtml, &list_html(after));
        return html;
    }
    for gone in before.iter().filter(|id| !is.contains(id.as_str())) {
        push_partial(&mut html, gone, Swap::Delete, "");
    }
    let mut at = 0;
    while at < after.len() {
        if was.contains(after_ids[at].as_str()) {
            at += 1;
            continue;
        }
        let start = at;
        while at < after.len() && !was.contains(after_ids[at].as_str()) {
            at += 1;
        }
        let run = list_html(&after[start..at]);
        match start.checked_sub(1) {
            None => push_partial(&mut html, region, Swap::AfterBegin, &run),
            Some(previous) => push_partial(&mut html, &after_ids[previous], Swap::AfterEnd, &run),
        }
    }
    if let Some(at) = changed.and_then(|id| after_ids.iter().position(|a| a == id))
        && was.contains(after_ids[at].as_str())
    {
        push_partial(
            &mut html,
            &after_ids[at],
            Swap::OuterHtml,
            &after[at].element(),
        );
    }
    html
}
