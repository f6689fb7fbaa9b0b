// tar.js
