"""The catalog site's stylesheet and script: plain CSS and ES5, no framework, no network."""

CSS = """\
:root { --fg: #1d2330; --muted: #5b6475; --line: #d8dde6; --accent: #1f5fbf; --ok: #1d7a3a; --wait: #9a6200; }
* { box-sizing: border-box; }
[hidden] { display: none !important; } /* over the display rules below: a hidden command box stays hidden */
body { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); margin: 0; }
header, main, nav { max-width: 960px; margin: 0 auto; padding: 0 1rem; }
header { padding-top: 1.5rem; }
h1 small { color: var(--muted); font-weight: normal; font-size: 60%; }
a { color: var(--accent); }
#search { width: 100%; font-size: 1.1rem; padding: .6rem .8rem; border: 1px solid var(--line); border-radius: 6px; }
#count { color: var(--muted); }
#entries { list-style: none; padding: 0; }
.entry { border-bottom: 1px solid var(--line); padding: .7rem 0; }
.entry .ref { font-weight: 600; font-size: 1.1rem; }
.entry p { margin: .2rem 0; }
.kind, .badge { font-size: .75rem; text-transform: uppercase; letter-spacing: .04em; border: 1px solid var(--line);
                border-radius: 3px; padding: 0 .3rem; color: var(--muted); }
.badge.processed { color: var(--ok); border-color: var(--ok); }
.badge.pending { color: var(--wait); border-color: var(--wait); }
.badge.skipped { color: var(--muted); border-style: dashed; }
.badge.signed { color: var(--ok); border-color: var(--ok); font-weight: 600; }
.badge.yanked, .badge.deprecated { color: #a3261b; border-color: #a3261b; font-weight: 600; }
p.deprecated { border-left: 4px solid #a3261b; padding: .3rem .8rem; background: #fbefee; }
.entry .facts { color: var(--muted); font-size: .85rem; }
.version { border: 1px solid var(--line); border-radius: 6px; padding: 0 1rem 1rem; margin: 1rem 0; }
h1, h2, h3, p, li { overflow-wrap: anywhere; }
dl.meta { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: .2rem 1rem; }
dl.meta dt { color: var(--muted); }
dl.meta dd { margin: 0; overflow-wrap: anywhere; }
.command { display: flex; flex-wrap: wrap; gap: .2rem .5rem; align-items: flex-start; margin: .6rem 0; }
.command .caption { flex: 0 0 100%; color: var(--muted); font-size: .85rem; }
/* min-width 0: a flex item is otherwise as wide as its longest unbreakable run (a 96-hex hash, a URL). */
.command code { flex: 1 1 0; min-width: 0; background: #f3f5f9; padding: .4rem .6rem; border-radius: 4px;
                overflow-wrap: anywhere; word-break: break-all; }
.hint { color: var(--muted); font-size: .9rem; }
code { overflow-wrap: anywhere; }
/* A wide table scrolls inside its own box; the page never scrolls sideways (390 to 1920 px wide). */
table { border-collapse: collapse; width: 100%; margin: .5rem 0; display: block; overflow-x: auto; }
th, td { text-align: left; border-bottom: 1px solid var(--line); padding: .25rem .5rem; vertical-align: top;
         overflow-wrap: anywhere; min-width: 6ch; }
"""

JS = """\
(function () {
  "use strict";
  var search = document.getElementById("search");
  if (search) {
    var entries = Array.prototype.slice.call(document.querySelectorAll("#entries .entry"));
    var count = document.getElementById("count");
    var empty = document.getElementById("empty");
    var filter = function () {
      var words = search.value.toLowerCase().split(/\\s+/).filter(Boolean);
      var shown = 0;
      entries.forEach(function (entry) {
        var text = entry.getAttribute("data-search");
        var match = words.every(function (word) { return text.indexOf(word) !== -1; });
        entry.hidden = !match;
        if (match) { shown += 1; }
      });
      count.textContent = shown + " of " + entries.length + " shown";
      empty.hidden = shown !== 0;
    };
    search.addEventListener("input", filter);
    // ?q=words pre-fills the search: shareable links to a filtered list.
    var query = new URLSearchParams(window.location.search).get("q");
    if (query) { search.value = query; }
    filter();
  }
  // Pages may be hosted anywhere: a command that names a file of this site gets its absolute URL from the
  // page's own location, shell-quoted as Python's shlex.quote does. Without a script the page shows a
  // command to run in a clone of the exchange instead.
  var absolute = function (href) {
    var anchor = document.createElement("a");
    anchor.href = href;
    return anchor.href;
  };
  var shellQuote = function (text) {
    if (text === "") { return "''"; }
    if (!/[^A-Za-z0-9_@%+=:,.\\/-]/.test(text)) { return text; }
    return "'" + text.replace(/'/g, "'\\"'\\"'") + "'";
  };
  Array.prototype.forEach.call(document.querySelectorAll(".command[data-href]"), function (box) {
    box.querySelector("code").textContent = box.getAttribute("data-before") +
      shellQuote(absolute(box.getAttribute("data-href"))) + box.getAttribute("data-after");
    box.hidden = false;
  });
  Array.prototype.forEach.call(document.querySelectorAll("button.copy"), function (button) {
    button.addEventListener("click", function () {
      var code = document.getElementById(button.getAttribute("data-copy"));
      var done = function () {
        button.textContent = "Copied";
        setTimeout(function () { button.textContent = "Copy"; }, 1500);
      };
      var select = function () {
        var range = document.createRange();
        range.selectNodeContents(code);
        var selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        try { if (document.execCommand("copy")) { done(); } } catch (ignored) { /* the text stays selected */ }
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(code.textContent).then(done, select);
      } else {
        select();
      }
    });
  });
}());
"""
