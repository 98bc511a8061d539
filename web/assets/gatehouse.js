// Gatehouse pages: countdowns, copy buttons and the WebAuthn (passkey) ceremonies.
// Loaded as a file (no inline script: the CSP forbids it).
"use strict";
(() => {
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

  // Countdowns: <span class="countdown" data-until="EPOCH_MS">.
  const pad = (n) => String(n).padStart(2, "0");
  function tick() {
    const now = Date.now();
    document.querySelectorAll(".countdown[data-until]").forEach((el) => {
      const left = Math.max(0, Math.floor((Number(el.dataset.until) - now) / 1000));
      const h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
      el.textContent = left === 0 ? "ended" : `${h}:${pad(m)}:${pad(s)} left`;
    });
  }
  tick();
  setInterval(tick, 1000);

  // Copy buttons: <button data-copy="#id">.
  document.addEventListener("click", (ev) => {
    const btn = ev.target.closest("[data-copy]");
    if (!btn) return;
    const src = document.querySelector(btn.dataset.copy);
    if (src && navigator.clipboard) {
      navigator.clipboard.writeText(src.textContent.trim()).then(() => { btn.textContent = "Copied"; });
    }
  });

  // WebAuthn: base64url <-> ArrayBuffer, and the two ceremonies.
  const b64uToBuf = (s) => {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    return Uint8Array.from(atob(s + "===".slice((s.length + 3) % 4)), (c) => c.charCodeAt(0)).buffer;
  };
  const bufToB64u = (buf) => {
    const b = new Uint8Array(buf); let s = "";
    for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  };
  async function postJSON(url, body) {
    const r = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
      body: JSON.stringify(body ?? {}),
    });
    const t = await r.text();
    let v = null;
    try { v = t ? JSON.parse(t) : null; } catch (_) { v = null; }
    if (!r.ok) throw new Error((v && v.error && v.error.message) || `HTTP ${r.status}`);
    return v;
  }
  async function register(start, finish, extra) {
    const { publicKey: pk } = await postJSON(start, extra);
    pk.challenge = b64uToBuf(pk.challenge);
    pk.user.id = b64uToBuf(pk.user.id);
    (pk.excludeCredentials || []).forEach((c) => { c.id = b64uToBuf(c.id); });
    const cred = await navigator.credentials.create({ publicKey: pk });
    const r = cred.response;
    return postJSON(finish, Object.assign({}, extra, {
      credential: {
        id: cred.id, rawId: bufToB64u(cred.rawId), type: cred.type,
        extensions: cred.getClientExtensionResults(),
        response: {
          clientDataJSON: bufToB64u(r.clientDataJSON),
          attestationObject: bufToB64u(r.attestationObject),
          transports: typeof r.getTransports === "function" ? r.getTransports() : undefined,
        },
      },
    }));
  }
  async function login(start, finish, extra) {
    const rcr = await postJSON(start, extra);
    const pk = rcr.publicKey;
    pk.challenge = b64uToBuf(pk.challenge);
    (pk.allowCredentials || []).forEach((c) => { c.id = b64uToBuf(c.id); });
    const cred = await navigator.credentials.get({ publicKey: pk });
    const r = cred.response;
    return postJSON(finish, Object.assign({}, extra, {
      ceremony: rcr.ceremony,
      credential: {
        id: cred.id, rawId: bufToB64u(cred.rawId), type: cred.type,
        extensions: cred.getClientExtensionResults(),
        response: {
          authenticatorData: bufToB64u(r.authenticatorData),
          clientDataJSON: bufToB64u(r.clientDataJSON),
          signature: bufToB64u(r.signature),
          userHandle: r.userHandle ? bufToB64u(r.userHandle) : null,
        },
      },
    }));
  }
  // <button data-webauthn="register|login" data-start=".." data-finish=".." data-form="id"
  //         data-next="/" data-status="id">
  document.addEventListener("click", async (ev) => {
    const btn = ev.target.closest("[data-webauthn]");
    if (!btn) return;
    ev.preventDefault();
    const out = document.getElementById(btn.dataset.status || "webauthn-status");
    const form = btn.dataset.form && document.getElementById(btn.dataset.form);
    const extra = {};
    if (form) new FormData(form).forEach((v, k) => { if (k !== "password" && k !== "csrf") extra[k] = v; });
    if (btn.dataset.next) extra.next = btn.dataset.next;
    if (!window.PublicKeyCredential) { if (out) out.textContent = "This browser has no passkey support."; return; }
    try {
      if (out) out.textContent = "Waiting for your passkey…";
      const fn = btn.dataset.webauthn === "register" ? register : login;
      const res = await fn(btn.dataset.start, btn.dataset.finish, extra);
      window.location.assign((res && res.next) || btn.dataset.next || "/");
    } catch (e) {
      if (out) { out.textContent = "Passkey failed: " + e.message; out.classList.add("error"); }
    }
  });
})();
