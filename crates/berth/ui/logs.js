// logs.js
