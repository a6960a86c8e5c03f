//! A model of a page's list regions that applies a stream's `<hx-partial>` blocks as htmx 4
//! does, so a test can compare what a tab shows after live messages with a fresh render.
//!
//! As in htmx, every target of a message is found before any partial of it is swapped: a
//! partial aimed at an element that a message adds finds nothing, and one aimed at an element
//! that an earlier partial of the same message replaced or deleted changes nothing.

/// One element at the top level of a region, as (element id, outer HTML).
pub type Element = (String, String);

struct Node {
    /// Which node this is: an element replaced by one with the same id is another node.
    key: u64,
    id: String,
    html: String,
}

/// What a partial's target was when its message arrived.
enum Found {
    Region(usize),
    Node(u64),
    /// An element inside a node (a job's progress bar).
    Inside(u64, String),
    Nothing,
}

/// The regions a test follows, each a list of elements.
pub struct Regions {
    regions: Vec<(String, Vec<Node>)>,
    keys: u64,
    /// Every partial applied, as (target, swap), in order.
    pub swaps: Vec<(String, String)>,
    /// Targets that were on no followed region when their message arrived.
    pub missed: Vec<String>,
}

impl Regions {
    /// The regions with ids `ids` as `page` shows them.
    pub fn from_page(page: &str, ids: &[&str]) -> Regions {
        let mut model = Regions {
            regions: Vec::new(),
            keys: 0,
            swaps: Vec::new(),
            missed: Vec::new(),
        };
        for id in ids {
            let nodes = model.nodes(region_html(page, id));
            model.regions.push((id.to_string(), nodes));
        }
        model
    }

    /// The region's elements, in order.
    pub fn elements(&self, region: &str) -> Vec<Element> {
        let (_, nodes) = self.regions.iter().find(|(id, _)| id == region).unwrap();
        nodes
            .iter()
            .map(|n| (n.id.clone(), n.html.clone()))
            .collect()
    }

    /// The ids of the region's elements, in order.
    pub fn ids(&self, region: &str) -> Vec<String> {
        self.elements(region)
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    }

    /// Applies one message's data.
    pub fn apply(&mut self, data: &str) {
        let partials = partials(data);
        let found: Vec<Found> = partials.iter().map(|p| self.find(&p.target)).collect();
        for (p, found) in partials.iter().zip(found) {
            self.swaps.push((p.target.clone(), p.swap.clone()));
            let new = self.nodes(&p.body);
            match found {
                Found::Region(r) => {
                    let nodes = &mut self.regions[r].1;
                    match p.swap.as_str() {
                        "innerHTML" => *nodes = new,
                        "afterbegin" => drop(nodes.splice(0..0, new)),
                        "beforeend" => nodes.extend(new),
                        other => panic!("the model does not {other} a region"),
                    }
                }
                Found::Node(key) => {
                    // A node an earlier partial took out is detached: nothing shows a change.
                    let Some((r, at)) = self.position(key) else {
                        continue;
                    };
                    let nodes = &mut self.regions[r].1;
                    match p.swap.as_str() {
                        "delete" => drop(nodes.remove(at)),
                        "outerHTML" => drop(nodes.splice(at..=at, new)),
                        "afterend" => drop(nodes.splice(at + 1..at + 1, new)),
                        "beforebegin" => drop(nodes.splice(at..at, new)),
                        "innerHTML" => {
                            let html = replace_inner(&nodes[at].html, &p.target, &p.body);
                            nodes[at].html = html;
                        }
                        other => panic!("the model does not {other} an element"),
                    }
                }
                Found::Inside(key, inner) => {
                    assert_eq!(
                        p.swap, "innerHTML",
                        "the model swaps inner elements' HTML only"
                    );
                    if let Some((r, at)) = self.position(key) {
                        let node = &mut self.regions[r].1[at];
                        node.html = replace_inner(&node.html, &inner, &p.body);
                    }
                }
                Found::Nothing => self.missed.push(p.target.clone()),
            }
        }
    }

    fn nodes(&mut self, html: &str) -> Vec<Node> {
        elements(html)
            .into_iter()
            .map(|(id, html)| {
                self.keys += 1;
                Node {
                    key: self.keys,
                    id,
                    html,
                }
            })
            .collect()
    }

    fn find(&self, target: &str) -> Found {
        let attribute = format!("id=\"{target}\"");
        for (r, (id, nodes)) in self.regions.iter().enumerate() {
            if id == target {
                return Found::Region(r);
            }
            for node in nodes {
                if node.id == target {
                    return Found::Node(node.key);
                }
                if node.html.contains(&attribute) {
                    return Found::Inside(node.key, target.to_string());
                }
            }
        }
        Found::Nothing
    }

    fn position(&self, key: u64) -> Option<(usize, usize)> {
        self.regions.iter().enumerate().find_map(|(r, (_, nodes))| {
            let at = nodes.iter().position(|n| n.key == key)?;
            Some((r, at))
        })
    }
}

struct Partial {
    target: String,
    swap: String,
    body: String,
}

fn partials(data: &str) -> Vec<Partial> {
    const OPEN: &str = "<hx-partial hx-target=\"#";
    const CLOSE: &str = "</hx-partial>";
    let mut found = Vec::new();
    let mut rest = data;
    while let Some(start) = rest.find(OPEN) {
        let after = &rest[start + OPEN.len()..];
        let target = &after[..after.find('"').unwrap()];
        let swap_at = after.find("hx-swap=\"").unwrap() + 9;
        let swap = &after[swap_at..swap_at + after[swap_at..].find('"').unwrap()];
        let body_start = after.find('>').unwrap() + 1;
        let body_end = after.find(CLOSE).unwrap();
        found.push(Partial {
            target: target.to_string(),
            swap: swap.to_string(),
            body: after[body_start..body_end].to_string(),
        });
        rest = &after[body_end + CLOSE.len()..];
    }
    found
}

/// The inner HTML of the element with id `id` in `page`.
pub fn region_html<'a>(page: &'a str, id: &str) -> &'a str {
    let attribute = format!("id=\"{id}\"");
    let at = page
        .find(&attribute)
        .unwrap_or_else(|| panic!("no #{id} in the page"));
    let open = page[..at].rfind('<').unwrap();
    let (start, end) = inner_span(page, open);
    &page[start..end]
}

/// The top-level elements of an HTML fragment, as (id, outer HTML); the text between them
/// (whitespace) is not part of any.
pub fn elements(html: &str) -> Vec<Element> {
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(offset) = html[at..].find('<') {
        let open = at + offset;
        let (start, end) = inner_span(html, open);
        let end = if is_void(&html[open..start]) {
            start
        } else {
            end + html[end..].find('>').unwrap() + 1
        };
        let element = &html[open..end];
        let tag = &element[..element.find('>').unwrap()];
        let id = tag
            .find("id=\"")
            .map(|i| tag[i + 4..i + 4 + tag[i + 4..].find('"').unwrap()].to_string())
            .unwrap_or_default();
        found.push((id, element.to_string()));
        at = end;
    }
    found
}

/// Where the content of the element whose start tag begins at `open` starts and ends (for a
/// void element, both are the end of its tag).
fn inner_span(html: &str, open: usize) -> (usize, usize) {
    let start = open + html[open..].find('>').unwrap() + 1;
    if is_void(&html[open..start]) {
        return (start, start);
    }
    let mut depth = 1;
    let mut at = start;
    loop {
        let tag_at = at + html[at..].find('<').expect("a closed element");
        let tag_end = tag_at + html[tag_at..].find('>').unwrap() + 1;
        let tag = &html[tag_at..tag_end];
        if tag.starts_with("</") {
            depth -= 1;
            if depth == 0 {
                return (start, tag_at);
            }
        } else if !is_void(tag) && !tag.starts_with("<!") {
            depth += 1;
        }
        at = tag_end;
    }
}

fn is_void(tag: &str) -> bool {
    let name: String = tag[1..]
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    [
        "input", "br", "img", "hr", "meta", "link", "source", "wbr", "col",
    ]
    .contains(&name.as_str())
}

/// `html` with the content of its element `id` replaced by `content`.
fn replace_inner(html: &str, id: &str, content: &str) -> String {
    let at = html.find(&format!("id=\"{id}\"")).unwrap();
    let open = html[..at].rfind('<').unwrap();
    let (start, end) = inner_span(html, open);
    format!("{}{content}{}", &html[..start], &html[end..])
}
