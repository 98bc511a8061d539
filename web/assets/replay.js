// The replay page: asciinema-player on the recorded cast (or the live websocket), and the
// command timeline that seeks it. The player is exposed as window.gatehousePlayer.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const el = document.getElementById("player");
  if (!el || !window.AsciinemaPlayer) return;
  let src;
  const opts = { fit: "width", idleTimeLimit: 2, terminalFontSize: "14px" };
  if (el.dataset.live) {
    opts.autoPlay = true;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    src = { driver: "websocket", url: `${scheme}//${location.host}${el.dataset.live}` };
  } else {
    src = el.dataset.src;
  }
  const player = AsciinemaPlayer.create(src, el, opts);
  window.gatehousePlayer = player;
  document.querySelectorAll("[data-seek]").forEach((btn) => {
    btn.addEventListener("click", async (ev) => {
      ev.preventDefault();
      const t = Number(btn.dataset.seek);
      await player.seek(t);
      document.querySelectorAll("[data-seek].current").forEach((b) => b.classList.remove("current"));
      btn.classList.add("current");
    });
  });
});
