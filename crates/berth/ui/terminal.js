// terminal.js
