//! The `Link: <…>; rel="next"` header (RFC 8288) a node sends with a list it
//! cut short (SPEC.md §6.1), so that a phone asks again only when there is more
//! to fetch, and not once more to learn that there is nothing.

/// The `Link` header value naming `path` (absolute path and query) as the next
/// page of a list.
pub fn next_link(path: &str) -> String {
    format!("<{path}>; rel=\"next\"")
}

/// Whether a `Link` header value names a next page: a link-value whose `rel`
/// parameter (quoted or not, one of its space-separated types, any case) is
/// `next`. Written by hand: the header is one line, and what a phone needs of
/// it is this test, not a parsed link.
pub fn names_next(value: &str) -> bool {
    link_values(value).any(|params| {
        params.split(';').any(|param| {
            let Some((name, v)) = param.split_once('=') else {
                return false;
            };
            name.trim().eq_ignore_ascii_case("rel")
                && v.trim()
                    .trim_matches('"')
                    .split_ascii_whitespace()
                    .any(|t| t.eq_ignore_ascii_case("next"))
        })
    })
}

/// The parameters of each link-value (`<target>; params`, comma-separated;
/// a target may itself hold commas).
fn link_values(value: &str) -> impl Iterator<Item = &str> {
    let mut rest = value;
    std::iter::from_fn(move || {
        let start = rest.find('<')?;
        let after_target = start + rest[start..].find('>')? + 1;
        let tail = &rest[after_target..];
        let end = tail.find([',', '<']).unwrap_or(tail.len());
        // A comma inside a quoted parameter would end the value early; our
        // nodes send none, and a false "no next" only delays to the next sync.
        rest = &tail[end..];
        Some(&tail[..end])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_s_link_names_next() {
        assert!(names_next(&next_link("/v1/batch-list/xx.health?after=7")));
    }

    #[test]
    fn rel_next_in_any_form_of_the_header() {
        for v in [
            "</a?after=1>; rel=next",
            "</a?after=1>;rel=\"NEXT\"",
            "</x>; rel=\"prev\", </a,b?after=1>; rel=\"last next\"",
            "</a>; title=\"x\"; rel=next",
        ] {
            assert!(names_next(v), "{v}");
        }
    }

    #[test]
    fn other_relations_and_junk_name_no_next() {
        for v in [
            "",
            "</a?after=1>; rel=\"prev\"",
            "</a?after=1>; rel=\"nextpage\"",
            "</a?rel=next>; rel=prev",
            "</a>; title=next",
            "rel=next",
            "<unterminated; rel=next",
        ] {
            assert!(!names_next(v), "{v}");
        }
    }
}
