// Loaded in the page head (_config.yml, html_js_files) to work around a Chromium behaviour seen on machines
// without a CJK font: text laid out while the bundled "Course CJK" subset font (course.css) is still loading
// can keep showing empty boxes after the font arrives. So start loading the font at once, and when it is
// in, set a font property that makes the browser lay the text out again (the dummy variation axis in
// course.css changes nothing else). Every page has Chinese text: the glossary's title in the side bar.
(function () {
  var fonts = document.fonts;
  if (!fonts || !fonts.load) return;
  fonts.load('1em "Course CJK"', "\u4e2d").then(function (faces) {
    if (faces.length) document.documentElement.classList.add("course-cjk-loaded");
  }, function () {});
})();
