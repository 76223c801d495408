//! Where the labels at link ends go so that no two overlap, and none covers a box or a
//! frame's title. Each label first tries the place nearest its box on its line; when that
//! is taken it slides along its half of the line, then to either side of it. The labels of the shortest lines are placed first, each against those already
//! placed, so the result is the same for the same scene.

use super::layout::Frame;
use super::scene::{Line, VBox};

/// Width of a character of the 11 px link labels, in tenths of a pixel (0.6 em).
const CHAR_TENTHS: i64 = 66;
/// Line height of the link labels.
const LINE: i64 = 13;
/// Air kept around every label.
const AIR: i64 = 3;
/// How far a label moves between two tries along its line.
const STEP: f64 = 4.0;

/// A rectangle: left, top, right, bottom.
type Rect = (i64, i64, i64, i64);

fn hits(a: Rect, b: Rect) -> bool {
    a.0 < b.2 && b.0 < a.2 && a.1 < b.3 && b.1 < a.3
}

/// Side of the cells `Taken` files rectangles under.
const CELL: i64 = 128;

/// The rectangles already taken, filed by the grid cells they cover, so that a try looks
/// at its neighbours only (a 300-node fabric has 1,200 labels).
#[derive(Default)]
struct Taken {
    rects: Vec<Rect>,
    cells: std::collections::HashMap<(i64, i64), Vec<usize>>,
}

impl Taken {
    fn cells(r: Rect) -> impl Iterator<Item = (i64, i64)> {
        let (x0, x1) = (r.0.div_euclid(CELL), r.2.div_euclid(CELL));
        let (y0, y1) = (r.1.div_euclid(CELL), r.3.div_euclid(CELL));
        (x0..=x1).flat_map(move |x| (y0..=y1).map(move |y| (x, y)))
    }

    fn add(&mut self, r: Rect) {
        let i = self.rects.len();
        self.rects.push(r);
        for c in Self::cells(r) {
            self.cells.entry(c).or_default().push(i);
        }
    }

    fn hit(&self, r: Rect) -> bool {
        Self::cells(r).any(|c| {
            self.cells
                .get(&c)
                .is_some_and(|v| v.iter().any(|&i| hits(self.rects[i], r)))
        })
    }
}

/// The size of a block of label lines, as the SVG writes it (centred on its point).
pub(super) fn size(lines: &[String]) -> (i64, i64) {
    let chars = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0) as i64;
    (chars * CHAR_TENTHS / 10, lines.len() as i64 * LINE)
}

fn rect_at((x, y): (i64, i64), (w, h): (i64, i64)) -> Rect {
    (
        x - w / 2 - AIR,
        y - h / 2 - AIR,
        x + w / 2 + AIR,
        y + h / 2 + AIR,
    )
}

/// The text in the middle of a line (its tunnel, its impairment), which stays put.
fn middle(l: &Line) -> Vec<Rect> {
    let (mx, my) = ((l.from.0 + l.to.0) / 2, (l.from.1 + l.to.1) / 2);
    [l.tunnel.as_ref(), l.impairment.as_ref()]
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, t)| rect_at((mx, my + 13 * i as i64), size(std::slice::from_ref(t))))
        .collect()
}

/// Moves the end labels of `links` off each other, the boxes and the frames' titles.
pub fn declutter(links: &mut [Line], boxes: &[VBox], frames: &[Frame]) {
    let mut taken = Taken::default();
    for b in boxes {
        taken.add((
            b.at.left(),
            b.at.top(),
            b.at.left() + b.at.w,
            b.at.top() + b.at.h,
        ));
    }
    for f in frames {
        taken.add((f.x, f.y, f.x + f.w, f.y + 26));
    }
    for r in links.iter().flat_map(middle) {
        taken.add(r);
    }
    // The labels of short lines have the fewest places, so they choose first.
    let mut order: Vec<(i64, usize, usize)> = links
        .iter()
        .enumerate()
        .flat_map(|(i, l)| {
            let len = (l.to.0 - l.from.0).pow(2) + (l.to.1 - l.from.1).pow(2);
            [(len, i, 0), (len, i, 1)]
        })
        .filter(|&(_, i, end)| !links[i].labels[end].0.is_empty())
        .collect();
    order.sort_unstable();
    for (_, i, end) in order {
        let l = &mut links[i];
        let (lines, at) = &l.labels[end];
        let (start, other) = if end == 0 {
            (l.from, l.to)
        } else {
            (l.to, l.from)
        };
        let wh = size(lines);
        let best = candidates(start, other, wh)
            .find(|&p| !taken.hit(rect_at(p, wh)))
            .unwrap_or(*at);
        taken.add(rect_at(best, wh));
        l.labels[end].1 = best;
    }
}

/// The rectangle holding every end label, with some air; `None` without labels.
pub fn extent(links: &[Line]) -> Option<Rect> {
    links
        .iter()
        .flat_map(|l| l.labels.iter())
        .filter(|(lines, _)| !lines.is_empty())
        .map(|(lines, at)| rect_at(*at, size(lines)))
        .reduce(|a, b| (a.0.min(b.0), a.1.min(b.1), a.2.max(b.2), a.3.max(b.3)))
}

/// Places to try for a label of size `wh` on the line from `start` to `other`: along its
/// half of the line from the box outwards (next to its interface's box first, where lines
/// that fan out from a box are furthest apart), then beside it, then the same past the
/// middle.
fn candidates(
    start: (i64, i64),
    other: (i64, i64),
    wh: (i64, i64),
) -> impl Iterator<Item = (i64, i64)> {
    let (dx, dy) = ((other.0 - start.0) as f64, (other.1 - start.1) as f64);
    let len = (dx * dx + dy * dy).sqrt().max(1.0);
    let (ux, uy) = (dx / len, dy / len);
    let (w, h) = (wh.0 as f64, wh.1 as f64);
    // Far enough from the box the line leaves for the label to clear it.
    let clear = ux.abs() * w / 2.0 + uy.abs() * h / 2.0 + AIR as f64;
    let half = ((len / 2.0 - clear) / STEP).max(0.0) as usize;
    let whole = ((len - 2.0 * clear) / STEP).max(0.0) as usize;
    // Beside the line: to its left or right when it is steep, above or below when it is
    // flat, just far enough for the label's box to clear it.
    let (nx, ny, side) = if uy.abs() >= ux.abs() {
        (1.0, 0.0, w / 2.0 + h / 2.0 * (ux / uy).abs() + AIR as f64)
    } else {
        (0.0, 1.0, h / 2.0 + w / 2.0 * (uy / ux).abs() + AIR as f64)
    };
    let at = move |k: usize, off: f64| {
        let s = clear + k as f64 * STEP;
        (
            start.0 + (ux * s + nx * off).round() as i64,
            start.1 + (uy * s + ny * off).round() as i64,
        )
    };
    // Its own half first, then past the middle when a crowd leaves it no room there.
    [(0, half), (half + 1, whole)]
        .into_iter()
        .flat_map(move |(from, to)| {
            [0.0, side, -side]
                .into_iter()
                .flat_map(move |off| (from..=to).map(move |k| at(k, off)))
        })
}
