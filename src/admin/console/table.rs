//! Sortable, paged tables: the column and direction a query asks for (anything
//! unknown is the table's default, never an error), the column headings' links, and
//! the links to the pages either side.

use crate::i18n::{Id, Tr};

/// Rows on one page of a table.
pub(super) const PAGE_SIZE: i64 = 50;
/// No link asks for a page past this; a query that does is given the first page.
pub(super) const MAX_PAGE: i64 = 10_000;

/// A column's direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dir {
    Asc,
    Desc,
}

impl Dir {
    /// `asc` or `desc`; anything else is no direction.
    pub(super) fn parse(raw: &str) -> Option<Self> {
        match raw.trim() {
            "asc" => Some(Self::Asc),
            "desc" => Some(Self::Desc),
            _ => None,
        }
    }

    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Asc => "asc",
            Self::Desc => "desc",
        }
    }

    pub(super) fn flip(self) -> Self {
        match self {
            Self::Asc => Self::Desc,
            Self::Desc => Self::Asc,
        }
    }

    /// The heading's `aria-sort`.
    fn aria(self) -> &'static str {
        match self {
            Self::Asc => "ascending",
            Self::Desc => "descending",
        }
    }
}

/// The page a query asks for: a whole number from 1 to [`MAX_PAGE`], else the first.
pub(super) fn page_asked(raw: &str) -> i64 {
    raw.trim()
        .parse::<i64>()
        .ok()
        .filter(|p| (1..=MAX_PAGE).contains(p))
        .unwrap_or(1)
}

/// A column a table may be sorted by.
pub(super) trait Column: Copy + PartialEq + 'static {
    /// Every sortable column, the default first.
    const ALL: &'static [Self];
    /// Its name in the query (`sort=`).
    fn key(self) -> &'static str;
    /// The direction a first click on it sorts in.
    fn first(self) -> Dir;

    /// The column a query names; the default for anything else.
    fn parse(raw: &str) -> Self {
        let raw = raw.trim();
        Self::ALL
            .iter()
            .copied()
            .find(|c| c.key() == raw)
            .unwrap_or(Self::ALL[0])
    }
}

/// A table's order: a column and its direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Sorting<C> {
    pub column: C,
    pub dir: Dir,
}

impl<C: Column> Sorting<C> {
    /// The order a query asks for (`sort`, `dir`): the default column, and a column's
    /// first direction, for whatever is not one.
    pub(super) fn asked(sort: &str, dir: &str) -> Self {
        let column = C::parse(sort);
        Self {
            column,
            dir: Dir::parse(dir).unwrap_or_else(|| column.first()),
        }
    }

    /// Whether this is the table's default order (the query need not say it).
    pub(super) fn is_default(&self) -> bool {
        self.column == C::ALL[0] && self.dir == self.column.first()
    }

    /// Adds `sort` and `dir` to a query, unless they are the default.
    pub(super) fn append(&self, query: &mut url::form_urlencoded::Serializer<'_, String>) {
        if !self.is_default() {
            query.append_pair("sort", self.column.key());
            query.append_pair("dir", self.dir.as_str());
        }
    }
}

/// One column heading: its words and, when the column sorts, the link that does.
pub(super) struct Heading {
    pub label: String,
    /// The link's id (`sort-<column>`), when the column sorts.
    pub id: String,
    /// The page the link opens: the table sorted by this column, from its first page.
    pub href: Option<String>,
    /// What the link does, for whoever does not see the arrow (`(sort descending)`).
    pub action: String,
    /// `aria-sort` of the column the table is sorted by.
    pub aria_sort: Option<&'static str>,
    /// An arrow beside the sorted column's words, hidden from screen readers (they
    /// hear `aria-sort`).
    pub arrow: &'static str,
}

impl Heading {
    /// A column that does not sort.
    pub(super) fn plain(label: String) -> Self {
        Self {
            label,
            id: String::new(),
            href: None,
            action: String::new(),
            aria_sort: None,
            arrow: "",
        }
    }

    /// The heading of `column` in a table sorted as `now`; its link opens `path` with
    /// the query `base` makes and the column's order.
    pub(super) fn sorting<C: Column>(
        tr: &Tr,
        label: String,
        column: C,
        now: Sorting<C>,
        path: &str,
        base: impl Fn() -> url::form_urlencoded::Serializer<'static, String>,
    ) -> Self {
        let sorted = now.column == column;
        let next = Sorting {
            column,
            dir: if sorted {
                now.dir.flip()
            } else {
                column.first()
            },
        };
        let mut query = base();
        next.append(&mut query);
        let query = query.finish();
        Self {
            label,
            id: format!("sort-{}", column.key()),
            href: Some(if query.is_empty() {
                path.to_owned()
            } else {
                format!("{path}?{query}")
            }),
            action: tr.id(match next.dir {
                Dir::Asc => Id("console-sort-ascending"),
                Dir::Desc => Id("console-sort-descending"),
            }),
            aria_sort: sorted.then(|| now.dir.aria()),
            arrow: match (sorted, now.dir) {
                (false, _) => "",
                (true, Dir::Asc) => "▲",
                (true, Dir::Desc) => "▼",
            },
        }
    }
}

/// The links to the pages either side of one, and where it is.
#[derive(Default)]
pub(super) struct Pager {
    /// The page before: its id, words and address.
    pub prev: Option<PageLink>,
    pub next: Option<PageLink>,
    /// `Page 2 of 7`, when pages are numbered.
    pub position: Option<String>,
}

pub(super) struct PageLink {
    pub id: &'static str,
    pub label: String,
    pub href: String,
}

impl Pager {
    /// The links of numbered page `page` of `pages`; `href` gives a page's address.
    pub(super) fn numbered(tr: &Tr, page: i64, pages: i64, href: impl Fn(i64) -> String) -> Self {
        Self {
            prev: (page > 1).then(|| PageLink {
                id: "prev",
                label: tr.t("console-previous-page"),
                href: href(page - 1),
            }),
            next: (page < pages).then(|| PageLink {
                id: "next",
                label: tr.t("console-next-page"),
                href: href(page + 1),
            }),
            position: (pages > 1).then(|| {
                tr.a2(
                    "console-page-of",
                    "page",
                    &page.to_string(),
                    "pages",
                    &pages.to_string(),
                )
            }),
        }
    }

    /// Whether there is anything to show.
    pub(super) fn is_empty(&self) -> bool {
        self.prev.is_none() && self.next.is_none() && self.position.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Col {
        Name,
        When,
    }

    impl Column for Col {
        const ALL: &'static [Self] = &[Self::Name, Self::When];
        fn key(self) -> &'static str {
            match self {
                Self::Name => "name",
                Self::When => "when",
            }
        }
        fn first(self) -> Dir {
            match self {
                Self::Name => Dir::Asc,
                Self::When => Dir::Desc,
            }
        }
    }

    #[test]
    fn whatever_a_query_says_is_a_sorting_and_a_page() {
        let s = Sorting::<Col>::asked("when", "");
        assert_eq!((s.column, s.dir), (Col::When, Dir::Desc));
        let s = Sorting::<Col>::asked("when", "asc");
        assert_eq!((s.column, s.dir), (Col::When, Dir::Asc));
        for (sort, dir) in [
            ("../x", "up"),
            ("", ""),
            ("NAME", "ASC"),
            ("name\0", "desc;"),
        ] {
            let s = Sorting::<Col>::asked(sort, dir);
            assert!(s.is_default(), "{sort:?} {dir:?}");
        }
        for (raw, page) in [
            ("2", 2),
            (" 3 ", 3),
            ("0", 1),
            ("-1", 1),
            ("999999999999", 1),
            ("99999999999999999999999", 1),
            ("1e3", 1),
            ("", 1),
            ("10000", MAX_PAGE),
        ] {
            assert_eq!(page_asked(raw), page, "{raw:?}");
        }
    }

    #[test]
    fn a_heading_link_flips_the_sorted_column_and_starts_another_at_its_first_direction() {
        let tr = Tr::default();
        let now = Sorting {
            column: Col::Name,
            dir: Dir::Asc,
        };
        let base = || {
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            q.append_pair("q", "a&b");
            q
        };
        let name = Heading::sorting(&tr, "Name".into(), Col::Name, now, "/t", base);
        assert_eq!(name.href.as_deref(), Some("/t?q=a%26b&sort=name&dir=desc"));
        assert_eq!(name.aria_sort, Some("ascending"));
        assert_eq!(name.action, "(sort descending)");
        let when = Heading::sorting(&tr, "When".into(), Col::When, now, "/t", base);
        assert_eq!(when.href.as_deref(), Some("/t?q=a%26b&sort=when&dir=desc"));
        assert_eq!(when.aria_sort, None);
        assert_eq!(when.arrow, "");
        // Back to the default order: the query need not say it.
        let desc = Sorting {
            column: Col::Name,
            dir: Dir::Desc,
        };
        let name = Heading::sorting(&tr, "Name".into(), Col::Name, desc, "/t", || {
            url::form_urlencoded::Serializer::new(String::new())
        });
        assert_eq!(name.href.as_deref(), Some("/t"));
        assert_eq!(name.aria_sort, Some("descending"));
    }

    #[test]
    fn pages_link_to_their_neighbours_only() {
        let tr = Tr::default();
        let href = |p: i64| format!("?page={p}");
        let first = Pager::numbered(&tr, 1, 3, href);
        assert!(first.prev.is_none());
        assert_eq!(first.next.as_ref().unwrap().href, "?page=2");
        assert_eq!(first.position.as_deref(), Some("Page 1 of 3"));
        let last = Pager::numbered(&tr, 3, 3, href);
        assert_eq!(last.prev.as_ref().unwrap().href, "?page=2");
        assert!(last.next.is_none());
        assert!(Pager::numbered(&tr, 1, 1, href).is_empty());
    }
}
