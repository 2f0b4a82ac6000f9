/*
 * bc-sso-gateway: "Sign in with company account" button for a BigCommerce storefront.
 *
 * The merchant adds this with Script Manager (footer of all pages):
 *
 *   <script src="https://sso.example.com/static/sso-button.js"
 *           data-gateway-url="https://sso.example.com" data-channel-id="1"
 *           data-redirect-to="/account.php" defer></script>
 *
 * On the page with the sign-in form it adds the button after the form; on every page it
 * points the storefront's own sign-out links (/login.php?action=logout) at the gateway's
 * /logout, which also ends the company sign-in at the IdP when the IdP supports it, then
 * signs the shopper out of the storefront.
 *
 * Attributes: data-gateway-url (required), data-channel-id (default 1),
 * data-redirect-to (default "/account.php"), data-label (default "Sign in with company
 * account"), data-target (CSS selector, default ".login-form"), data-sign-out ("off" leaves
 * the sign-out links alone).
 *
 * Plain ES2017, no dependencies, no network requests: it only adds or changes links to the
 * gateway. Text goes in with textContent and the URL is built with URL and its
 * URLSearchParams (url.searchParams), so attribute values cannot inject markup.
 */
(function () {
  "use strict";

  var BUTTON_CLASS = "bc-sso-button";
  var STYLE_ID = "bc-sso-button-style";

  // document.currentScript is null once the script runs deferred from some loaders, or
  // when inserted by a tag manager; fall back to the tag whose src ends in sso-button.js.
  var script = document.currentScript;
  if (!script || !script.hasAttribute("data-gateway-url")) {
    var candidates = document.querySelectorAll("script[src]");
    script = null;
    for (var i = 0; i < candidates.length; i++) {
      var src = candidates[i].getAttribute("src").split("?")[0].split("#")[0];
      if (/sso-button\.js$/.test(src)) {
        script = candidates[i];
        break;
      }
    }
  }
  if (!script) {
    return;
  }

  function attr(name, fallback) {
    var value = script.getAttribute(name);
    return value === null || value.trim() === "" ? fallback : value.trim();
  }

  // `<gateway>/<path>?channel_id=N`, or null when the gateway URL is missing or not http(s).
  function gatewayUrl(path) {
    var gateway = attr("data-gateway-url", null);
    if (!gateway) {
      if (window.console) {
        console.warn("bc-sso-gateway: data-gateway-url is missing; nothing added");
      }
      return null;
    }
    var url;
    try {
      // Relative to the page so "https://sso.example.com" and ".../" both work.
      url = new URL(gateway.replace(/\/+$/, "") + "/" + path, window.location.href);
    } catch (e) {
      return null;
    }
    // Only http(s): a "javascript:" gateway URL must never become a link.
    if (url.protocol !== "https:" && url.protocol !== "http:") {
      return null;
    }
    var channel = attr("data-channel-id", "1");
    if (!/^[0-9]+$/.test(channel)) {
      channel = "1";
    }
    url.searchParams.set("channel_id", channel);
    return url;
  }

  function loginUrl() {
    var url = gatewayUrl("login");
    if (!url) {
      return null;
    }
    url.searchParams.set("redirect_to", attr("data-redirect-to", "/account.php"));
    return url.toString();
  }

  // The storefront's sign-out links go through the gateway's /logout.
  function signOutLinks() {
    if (attr("data-sign-out", "on") === "off") {
      return;
    }
    var links = document.querySelectorAll('a[href*="action=logout"]');
    for (var i = 0; i < links.length; i++) {
      var href;
      try {
        href = new URL(links[i].getAttribute("href"), window.location.href);
      } catch (e) {
        continue;
      }
      if (href.origin !== window.location.origin || !/\/login\.php$/.test(href.pathname)) {
        continue;
      }
      var url = gatewayUrl("logout");
      if (url) {
        links[i].href = url.toString();
      }
    }
  }

  function addStyle() {
    if (document.getElementById(STYLE_ID)) {
      return;
    }
    var style = document.createElement("style");
    style.id = STYLE_ID;
    style.textContent =
      "." + BUTTON_CLASS + "{display:inline-block;margin:1rem 0;padding:.6rem 1.2rem;" +
      "border:1px solid #1f2933;border-radius:4px;background:#fff;color:#1f2933;" +
      "font:inherit;font-weight:600;text-decoration:none;cursor:pointer}" +
      "." + BUTTON_CLASS + ":hover,." + BUTTON_CLASS + ":focus{background:#1f2933;color:#fff}";
    (document.head || document.documentElement).appendChild(style);
  }

  function insert() {
    signOutLinks();
    // Idempotent: loading the snippet twice must not add a second button.
    if (document.querySelector("a." + BUTTON_CLASS)) {
      return;
    }
    // Only on the page with the sign-in form: the script runs on every page.
    var anchor = null;
    try {
      anchor = document.querySelector(attr("data-target", ".login-form"));
    } catch (e) {
      anchor = null; // invalid selector: no button rather than one in a random place
    }
    if (!anchor) {
      return;
    }
    var href = loginUrl();
    if (!href) {
      return;
    }
    var link = document.createElement("a");
    link.className = BUTTON_CLASS;
    link.href = href;
    link.textContent = attr("data-label", "Sign in with company account");
    addStyle();
    if (anchor.parentNode) {
      anchor.parentNode.insertBefore(link, anchor.nextSibling);
    } else {
      document.body.appendChild(link);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", insert);
  } else {
    insert();
  }
})();
