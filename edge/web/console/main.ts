import { mountConsole } from './console.ts';

// The bundle's entry (console.js): the console on console.html's #console, with the browser's own
// fetch, session storage, clock and timers.
mountConsole(document.getElementById('console')!, {
  fetch,
  storage: sessionStorage,
  now: () => Date.now(),
  every: (ms, tick) => {
    const id = setInterval(tick, ms);
    return () => clearInterval(id);
  },
  page: window,
});
