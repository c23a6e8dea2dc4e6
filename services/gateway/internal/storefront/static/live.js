// live.js keeps the element #live of the page current: while its
// data-final is not "true", it fetches data-live (the same element,
// rendered by the server) every half second and puts it in place. The
// server escapes everything it renders; no script in it runs.
'use strict';

const every = 500;

async function refresh() {
  const live = document.getElementById('live');
  if (!live || live.dataset.final === 'true') {
    return;
  }
  try {
    const resp = await fetch(live.dataset.live, { cache: 'no-store', credentials: 'same-origin' });
    if (resp.ok) {
      const doc = new DOMParser().parseFromString(await resp.text(), 'text/html');
      const next = doc.getElementById('live');
      if (next) {
        live.replaceWith(document.adoptNode(next));
      }
    }
  } catch (err) {
    // The gateway is restarting or the network is down: try again.
  }
  setTimeout(refresh, every);
}

setTimeout(refresh, every);
