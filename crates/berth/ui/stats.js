// stats.js
