//! The readable table and the SVG plot of a run.

use super::metrics::Report;

fn row(name: &str, succ: &[f64], msgs: f64) -> String {
    let mut s = format!("{name:<11}");
    for v in succ {
        s.push_str(&format!(" {v:>5.3}"));
    }
    s.push_str(&format!("  {msgs:>9.1}\n"));
    s
}

/// The table `cmr-sim` prints by default.
pub fn table(r: &Report) -> String {
    let mut s = format!(
        "cmr-sim: {} routers ({} graph, mean degree {:.1}, seed {}), {} labels, {} experts, \
         {} training posts, {} queries\n\n",
        r.routers, r.topology, r.degree, r.seed, r.labels, r.experts, r.training_items, r.queries
    );
    if r.search_first {
        s.push_str(&format!(
            "clients search their router's pool first: {} of {} queries found there, not posted\n\n",
            r.found_locally, r.queries
        ));
    }
    if r.widen_after > 0 {
        s.push_str(&format!(
            "clients widen posts unanswered after {} round(s) (cmr-post --widen): {} of {} queries\n\n",
            r.widen_after, r.widened, r.queries
        ));
    }
    s.push_str(&success_rows(r));
    s.push_str(&measures(r));
    s.push_str(&faults(r));
    s.push_str(&routing(r));
    s.push_str(&format!(
        "{} rounds of {} s; wall {:.1} s; peak RSS {} KiB\n",
        r.rounds, r.round_secs, r.wall_s, r.peak_rss_kib
    ));
    s
}

/// Success within h rounds and messages per query: cmr, its inbox, each baseline.
fn success_rows(r: &Report) -> String {
    let mut s = format!(
        "success within h rounds{}msgs/query\n",
        // at least one space: a horizon under 4 is narrower than the title
        " ".repeat((r.horizon * 6 + 3).saturating_sub(22).max(1))
    );
    s.push_str("h          ");
    for h in 1..=r.horizon {
        s.push_str(&format!(" {h:>5}"));
    }
    s.push('\n');
    s.push_str(&row("cmr", &r.success_by_round, r.messages_per_query));
    s.push_str(&row(
        "(inbox)",
        &r.inbox_success_by_round,
        r.messages_per_query,
    ));
    for (k, b) in &r.baselines {
        s.push_str(&row(k, &b.success_by_round, b.messages_per_query));
    }
    let a = &r.against_flood;
    if let (Some(p), Some(ci)) = (
        r.success_by_round.get(a.h.wrapping_sub(1)),
        r.success_ci95_by_round.get(a.h.wrapping_sub(1)),
    ) {
        s.push_str(&format!(
            "within {} rounds: cmr {p:.3} (95% interval {:.3}-{:.3} over {} queries), \
             {:.3} of {}'s (95% {:.3}-{:.3}, paired bootstrap over the queries)\n",
            a.h, ci[0], ci[1], r.queries, a.ratio, a.baseline, a.ci95[0], a.ci95[1]
        ));
    }
    s
}

/// Learning, load, caches, training and exploration.
fn measures(r: &Report) -> String {
    let mut s = format!(
        "\nlearning: success within 4 rounds {:.3} (first fifth of queries) -> {:.3} (last fifth)\n",
        r.learning.first_fifth_4, r.learning.last_fifth_4
    );
    s.push_str(&format!(
        "load (messages received per router, query phase): mean {:.1}, max {:.0}, max/mean {:.2}\n",
        r.load.mean, r.load.max, r.load.max_over_mean
    ));
    s.push_str(&format!(
        "cache (messages per router): mean {:.1}, min {:.0}, max {:.0}\n",
        r.cache.mean, r.cache.min, r.cache.max
    ));
    s.push_str(&format!(
        "training: {:.1} deliveries per expert post; explored: {:.3} of routed messages\n",
        r.messages_per_training_post, r.explored_share
    ));
    s.push_str(&format!(
        "held as bulk posting (cached, not forwarded): {} spam, {} forgeries, {} other\n",
        r.held_as_bulk.spam, r.held_as_bulk.forged, r.held_as_bulk.other
    ));
    s.push_str(&format!(
        "replies shown to the queries' clients within the horizon: {:.2} per query, {:.3} of them with the query's label\n",
        r.replies_per_query, r.reply_precision
    ));
    s
}

/// The faults of the run: churn, the spammer, the forger.
fn faults(r: &Report) -> String {
    let mut s = String::new();
    if r.churn > 0.0 {
        s.push_str(&format!(
            "churn: {:.0}% of routers down in each round\n",
            r.churn * 100.0
        ));
    }
    if let Some(sp) = &r.spam {
        s.push_str(&format!(
            "spam: router {} at {}x the normal rate: {} posts ({} widened), {} deliveries, cached by {} routers ({:.1}%)\n",
            sp.router, sp.rate_multiple, sp.posted, sp.widened, sp.messages, sp.routers_cached, sp.share_cached * 100.0
        ));
    }
    if let Some(f) = &r.forger {
        s.push_str(&format!(
            "forger: router {} claiming {}: {} sent, {} accepted, rejected {:?}, cached by {} routers\n",
            f.router, f.claims, f.sent, f.accepted, f.rejected, f.routers_cached
        ));
    }
    s
}

/// Forwards by rule, relay refusals, rejected deliveries and the settings.
fn routing(r: &Report) -> String {
    let mut s = format!("forwards by rule: {:?}\n", r.forwards_by_reason);
    if !r.relay_refused.is_empty() {
        s.push_str(&format!(
            "refused by the relay policy: {:?}\n",
            r.relay_refused
        ));
    }
    if !r.rejected.is_empty() {
        s.push_str(&format!("rejected deliveries: {:?}\n", r.rejected));
    }
    s.push_str(&format!(
        "settings: {}\n",
        r.settings
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    ));
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A strategy in the plot: its name, success by round, messages per query.
type Series = (String, Vec<f64>, f64);

/// A colour per strategy, in the order of the series.
const COLOURS: [&str; 7] = [
    "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf",
];

/// The success panel: left, top, width and height.
const PANEL: (f64, f64, f64, f64) = (60.0, 40.0, 380.0, 260.0);

/// Two panels: success against rounds (a line per strategy), and messages per query (bars,
/// logarithmic).
pub fn svg(r: &Report) -> String {
    let mut series: Vec<Series> = vec![(
        "cmr".into(),
        r.success_by_round.clone(),
        r.messages_per_query,
    )];
    for (k, b) in &r.baselines {
        series.push((k.clone(), b.success_by_round.clone(), b.messages_per_query));
    }
    let (w, h) = (820.0, 360.0);
    let (x0, _, _, _) = PANEL;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n\
         <text x=\"{x0}\" y=\"22\" font-size=\"14\">{} routers, {} queries (seed {}): success within h rounds</text>\n",
        r.routers, r.queries, r.seed
    );
    s.push_str(&success_panel(r.horizon, &series));
    s.push_str(&messages_panel(&series));
    s.push_str("</svg>\n");
    s
}

/// Success within h rounds, h from 1 to `horizon`: the axes, and a line per strategy.
fn success_panel(horizon: usize, series: &[Series]) -> String {
    let (x0, y0, pw, ph) = PANEL;
    // Axes of the success panel.
    let mut s = format!(
        "<line x1=\"{x0}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n<line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x0}\" y2=\"{}\" stroke=\"black\"/>\n",
        y0 + ph, x0 + pw, y0 + ph, y0 + ph
    );
    let n = horizon.max(1) as f64;
    let px = |i: f64| x0 + (i - 1.0) / (n - 1.0).max(1.0) * pw;
    let py = |v: f64| y0 + (1.0 - v) * ph;
    for t in 0..=5 {
        let v = t as f64 / 5.0;
        s.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{v:.1}</text><line x1=\"{x0}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#ddd\"/>\n",
            x0 - 6.0,
            py(v) + 4.0,
            x0 + pw,
            y = py(v)
        ));
    }
    for i in 1..=horizon {
        s.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{i}</text>\n",
            px(i as f64),
            y0 + ph + 16.0
        ));
    }
    s.push_str(&format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">rounds (h)</text>\n",
        x0 + pw / 2.0,
        y0 + ph + 34.0
    ));
    for (k, (name, succ, _)) in series.iter().enumerate() {
        let c = COLOURS[k % COLOURS.len()];
        let pts: Vec<String> = succ
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", px(i as f64 + 1.0), py(*v)))
            .collect();
        s.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"2\" points=\"{}\"/>\n\
             <text x=\"{}\" y=\"{}\" fill=\"{c}\">{}</text>\n",
            pts.join(" "),
            x0 + 10.0,
            y0 + 16.0 + 16.0 * k as f64,
            esc(name)
        ));
    }
    s
}

/// Messages per query, log bars.
fn messages_panel(series: &[Series]) -> String {
    let (_, y0, _, _) = PANEL;
    let bx = 520.0;
    let mut s = format!(
        "<text x=\"{bx}\" y=\"{}\">messages per query (log scale)</text>\n",
        y0 - 4.0
    );
    let maxm = series.iter().map(|x| x.2).fold(1.0f64, f64::max);
    let lw = |m: f64| {
        if m <= 1.0 {
            0.0
        } else {
            m.log10() / maxm.log10().max(1e-9) * 220.0
        }
    };
    for (k, (name, _, m)) in series.iter().enumerate() {
        let c = COLOURS[k % COLOURS.len()];
        let y = y0 + 20.0 + 40.0 * k as f64;
        s.push_str(&format!(
            "<rect x=\"{}\" y=\"{y}\" width=\"{:.1}\" height=\"22\" fill=\"{c}\"/>\n\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n\
             <text x=\"{:.1}\" y=\"{}\">{m:.1}</text>\n",
            bx + 50.0,
            lw(*m),
            bx + 44.0,
            y + 15.0,
            esc(name),
            bx + 56.0 + lw(*m),
            y + 15.0
        ));
    }
    s
}
