// files.js
