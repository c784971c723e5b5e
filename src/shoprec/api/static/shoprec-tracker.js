/*! shoprec storefront tracker: page views, clicks, add-to-cart, purchases and impressions of served lists,
 * sent to POST /v1/events of a shoprec API. Plain JavaScript, no build step, no dependency.
 *
 *   <script src="https://API/static/shoprec-tracker.js" async></script>
 *   <script>
 *     window.shoprecQueue = window.shoprecQueue || [];        // calls made before the script loaded
 *     function shoprec() { shoprecQueue.push(arguments); }
 *     shoprec("init", {endpoint: "https://API", apiKey: "sk_... (a key with only the `events` scope)",
 *                      userId: "u-42"});                     // userId: optional (an anonymous id is kept)
 *     shoprec("pageView", "item-9");                           // a product page
 *     shoprec("impression", recommendationId, ["item-1", "item-2"]);
 *     shoprec("click", "item-1", {recommendationId: recommendationId});
 *     shoprec("addToCart", "item-1"); shoprec("purchase", "item-1", {value: 19.9});
 *   </script>
 *
 * Events are queued and sent in batches (every `flushMs`, at `maxBatch` events, and when the page is hidden)
 * with fetch(..., {keepalive: true}), so a batch survives navigation. Each event carries an event_id and each
 * batch an Idempotency-Key, both chosen once: a batch that got no answer (network error, 5xx, 429) is sent
 * again, identical, with backoff, and the server stores each event once. A batch still unsent when its retries
 * run out (or the page is left) is kept in localStorage and sent again, identical, by the next page that loads
 * the tracker with the same endpoint. Nothing here ever throws into the
 * page or blocks it: failures are swallowed and counted in `tracker.stats` (and passed to `onError`).
 * docs/clients.md ("Browser tracker") documents it.
 */
(function (global) {
  "use strict";

  var DEFAULTS = {endpoint: "", apiKey: "", userId: null, platform: null, maxBatch: 20, flushMs: 1000,
                  maxRetries: 5, backoffMs: 500, maxQueue: 1000, keepUnsent: true, onError: null};
  var UNSENT = "shoprec_unsent";  // localStorage: [{endpoint, key, events}] of batches without an answer yet

  function newId() {
    try {
      if (global.crypto && global.crypto.randomUUID) return global.crypto.randomUUID().replace(/-/g, "");
    } catch (e) { /* not a secure context: fall through */ }
    var out = "";
    for (var i = 0; i < 32; i++) out += Math.floor(Math.random() * 16).toString(16);
    return out;
  }

  function stored(storage, name) {  // an id kept in local/sessionStorage (a fresh one when storage is blocked)
    try {
      var value = global[storage].getItem(name);
      if (!value) { value = newId(); global[storage].setItem(name, value); }
      return value;
    } catch (e) { return newId(); }
  }

  function Tracker(options) {
    this.options = {};
    for (var k in DEFAULTS) this.options[k] = (options && options[k] !== undefined) ? options[k] : DEFAULTS[k];
    this.options.endpoint = String(this.options.endpoint).replace(/\/+$/, "");
    this.userId = this.options.userId || stored("localStorage", "shoprec_uid");
    this.sessionId = stored("sessionStorage", "shoprec_sid");
    this.queue = [];
    this.inFlight = 0;
    this.pending = [];  // promises of batches not yet settled (flush() waits on them)
    this.stats = {queued: 0, sent: 0, batches: 0, retries: 0, failed: 0, rejected: 0, dropped: 0, errors: 0};
    this.timer = null;
    var self = this;
    try {
      global.addEventListener("pagehide", function () { self.flush(); });
      global.document.addEventListener("visibilitychange", function () {
        if (global.document.visibilityState === "hidden") self.flush();
      });
    } catch (e) { this.stats.errors++; }
    this.resendUnsent();
  }

  Tracker.prototype.unsent = function (change) {  // read (and with `change`, rewrite) the kept batches
    try {
      var kept = JSON.parse(global.localStorage.getItem(UNSENT) || "[]");
      if (!change) return kept;
      kept = change(kept).slice(-50);
      global.localStorage.setItem(UNSENT, JSON.stringify(kept));
      return kept;
    } catch (e) { return []; }
  };

  Tracker.prototype.keep = function (batch) {
    if (!this.options.keepUnsent) return;
    var entry = {endpoint: this.options.endpoint, key: batch.key, events: batch.events};
    this.unsent(function (kept) {
      return kept.filter(function (b) { return b.key !== entry.key; }).concat([entry]);
    });
  };

  Tracker.prototype.forget = function (batch) {
    if (!this.options.keepUnsent) return;
    this.unsent(function (kept) { return kept.filter(function (b) { return b.key !== batch.key; }); });
  };

  Tracker.prototype.resendUnsent = function () {  // batches an earlier page could not deliver, sent as they were
    var self = this;
    try {
      if (!this.options.keepUnsent) return;
      var mine = this.unsent().filter(function (b) { return b.endpoint === self.options.endpoint; });
      for (var i = 0; i < mine.length; i++) {
        this.pending.push(this.sendBatch({events: mine[i].events, key: mine[i].key, attempt: 0}));
      }
    } catch (e) { this.fail(e); }
  };

  Tracker.prototype.track = function (type, itemId, extra) {
    try {
      if (!itemId) throw new Error("shoprec tracker: " + type + " needs an item id");
      extra = extra || {};
      var event = {user_id: String(extra.userId || this.userId), item_id: String(itemId), type: type,
                   timestamp: Date.now() / 1000, event_id: newId(), session_id: this.sessionId};
      if (extra.value !== undefined) event.value = extra.value;
      var context = {};
      if (extra.recommendationId) context.recommendation_id = String(extra.recommendationId);
      if (extra.position !== undefined) context.position = extra.position;
      if (extra.context) for (var c in extra.context) context[c] = extra.context[c];
      try { context.page = String(global.location.pathname).slice(0, 500); } catch (e) { /* no location */ }
      event.context = context;
      if (this.queue.length >= this.options.maxQueue) { this.stats.dropped++; return; }
      this.queue.push(event);
      this.stats.queued++;
      if (this.queue.length >= this.options.maxBatch) this.flush();
      else this.schedule();
    } catch (e) { this.fail(e); }
  };

  Tracker.prototype.pageView = function (itemId, extra) { this.track("view", itemId, extra); };
  Tracker.prototype.click = function (itemId, extra) { this.track("click", itemId, extra); };
  Tracker.prototype.addToCart = function (itemId, extra) { this.track("cart", itemId, extra); };
  Tracker.prototype.purchase = function (itemId, extra) { this.track("purchase", itemId, extra); };
  Tracker.prototype.impression = function (recommendationId, itemIds, extra) {
    try {
      for (var i = 0; i < itemIds.length; i++) {
        var e = {recommendationId: recommendationId, position: i};
        if (extra) for (var k in extra) e[k] = extra[k];
        this.track("impression", itemIds[i], e);
      }
    } catch (err) { this.fail(err); }
  };

  Tracker.prototype.schedule = function () {
    var self = this;
    if (this.timer === null) this.timer = setTimeout(function () { self.timer = null; self.flush(); },
                                                     this.options.flushMs);
  };

  /* Send everything queued now; the promise resolves (never rejects) once every batch has settled. */
  Tracker.prototype.flush = function () {
    try {
      if (this.timer !== null) { clearTimeout(this.timer); this.timer = null; }
      while (this.queue.length) {
        var batch = {events: this.queue.splice(0, this.options.maxBatch), key: newId(), attempt: 0};
        this.keep(batch);  // until the server has answered it
        this.pending.push(this.sendBatch(batch));
      }
      var all = this.pending.slice();
      return Promise.all(all).then(function () { return undefined; });
    } catch (e) { this.fail(e); return Promise.resolve(); }
  };

  Tracker.prototype.sendBatch = function (batch) {
    var self = this, o = this.options;
    var headers = {"Content-Type": "application/json", "X-API-Key": o.apiKey, "Idempotency-Key": batch.key};
    if (o.platform) headers["X-Platform"] = o.platform;
    var body = JSON.stringify(batch.events);
    var promise;
    try {
      promise = global.fetch(o.endpoint + "/v1/events", {method: "POST", headers: headers, body: body,
                                                          keepalive: body.length < 60000, mode: "cors",
                                                          credentials: "omit"});
    } catch (e) { promise = Promise.reject(e); }
    var settled = promise.then(function (response) {
      if (response.ok) {
        self.stats.sent += batch.events.length; self.stats.batches++; self.forget(batch); return null;
      }
      var retryable = response.status >= 500 || response.status === 429 || response.status === 409;
      var after = parseFloat(response.headers.get("Retry-After"));
      return retryable ? self.retry(batch, isNaN(after) ? null : after * 1000, "HTTP " + response.status)
                       : self.reject(batch, response);
    }, function (error) {  // no answer: the server may have stored the batch; the same key makes that harmless
      return self.retry(batch, null, error);
    }).catch(function (e) { self.fail(e); });
    return settled.then(function () {
      var i = self.pending.indexOf(settled);
      if (i >= 0) self.pending.splice(i, 1);
    });
  };

  Tracker.prototype.retry = function (batch, waitMs, why) {
    var self = this;
    if (batch.attempt >= this.options.maxRetries) {  // kept in localStorage: the next page sends it again
      this.stats.failed += batch.events.length;
      this.fail(why);
      return null;
    }
    var backoff = this.options.backoffMs * Math.pow(2, batch.attempt) * (0.5 + Math.random());
    batch.attempt++;
    this.stats.retries++;
    return new Promise(function (resolve) {
      setTimeout(function () { resolve(self.sendBatch(batch)); }, waitMs !== null ? waitMs : backoff);
    });
  };

  Tracker.prototype.reject = function (batch, response) {  // a 4xx other than 409/429: sending again won't help
    var self = this;
    this.stats.rejected += batch.events.length;
    this.forget(batch);
    return response.text().then(function (text) { self.fail("HTTP " + response.status + ": " + text); },
                                function () { self.fail("HTTP " + response.status); });
  };

  Tracker.prototype.fail = function (error) {
    this.stats.errors++;
    try { if (this.options.onError) this.options.onError(error); } catch (e) { /* never into the page */ }
  };

  var api = {Tracker: Tracker, tracker: null,
             init: function (options) { api.tracker = new Tracker(options); return api.tracker; }};

  function dispatch(args) {  // shoprec("method", ...args): the queue-based snippet's calls
    try {
      var name = args[0], rest = Array.prototype.slice.call(args, 1);
      if (name === "init") return api.init(rest[0]);
      if (!api.tracker) { api.init({}); api.tracker.fail("shoprec tracker: call init first"); return; }
      if (typeof api.tracker[name] === "function") return api.tracker[name].apply(api.tracker, rest);
      api.tracker.fail("shoprec tracker: unknown call " + name);
    } catch (e) { /* never into the page */ }
  }

  var early = global.shoprecQueue || [];
  global.shoprecTracker = api;
  global.shoprecQueue = {push: dispatch};
  for (var i = 0; i < early.length; i++) dispatch(early[i]);
})(typeof window !== "undefined" ? window : this);
