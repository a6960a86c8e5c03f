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
//! create pushes out or a delete pulls in, without reading the list.

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

#[cfg(test)]
mod tests {
    use super::*;

    /// Element `e{0}`, in version `{1}`.
    struct Item(u32, u32);

    impl Listed for Item {
        fn element_id(&self) -> String {
            format!("e{}", self.0)
        }

        fn element(&self) -> String {
            format!("<i id=\"e{}\">{}</i>", self.0, self.1)
        }
    }

    fn changes(before: &[u32], after: &[u32], changed: Option<&str>) -> String {
        let before: Vec<String> = before.iter().map(|n| format!("e{n}")).collect();
        let after: Vec<Item> = after.iter().map(|n| Item(*n, 1)).collect();
        list_changes("list", &before, &after, changed)
    }

    #[test]
    fn a_new_first_element_is_prepended_and_the_one_pushed_out_deleted() {
        assert_eq!(
            changes(&[3, 2, 1], &[4, 3, 2], None),
            concat!(
                r##"<hx-partial hx-target="#e1" hx-swap="delete"></hx-partial>"##,
                r##"<hx-partial hx-target="#list" hx-swap="afterbegin"><i id="e4">1</i></hx-partial>"##,
            )
        );
    }

    #[test]
    fn new_neighbours_go_in_one_insert_before_the_replacement_they_follow() {
        assert_eq!(
            changes(&[9, 5, 1], &[9, 7, 6, 5, 1], Some("e9")),
            concat!(
                r##"<hx-partial hx-target="#e9" hx-swap="afterend"><i id="e7">1</i><i id="e6">1</i></hx-partial>"##,
                r##"<hx-partial hx-target="#e9" hx-swap="outerHTML"><i id="e9">1</i></hx-partial>"##,
            )
        );
    }

    #[test]
    fn a_changed_element_that_leaves_is_only_deleted() {
        assert_eq!(
            changes(&[3, 2, 1], &[3, 2], Some("e1")),
            r##"<hx-partial hx-target="#e1" hx-swap="delete"></hx-partial>"##
        );
        assert_eq!(changes(&[3, 2], &[3, 2], None), "", "nothing changed");
    }

    #[test]
    fn elements_that_swap_places_resend_the_region() {
        assert_eq!(
            changes(&[1, 2], &[2, 1], None),
            r##"<hx-partial hx-target="#list" hx-swap="innerHTML"><i id="e2">1</i><i id="e1">1</i></hx-partial>"##
        );
    }
}
