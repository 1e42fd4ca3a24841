// What the pages' scripts share for the DOM. Text only ever goes in through textContent.
"use strict";
window.hubDom = {
  // A new element holding `text` (none when undefined or null), with `className` if given.
  element: function (tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = text;
    if (className) node.className = className;
    return node;
  },
  // A status line: its text, shown as an error or not.
  status: function (node, text, isError) {
    node.textContent = text;
    node.className = isError ? "error" : "";
  },
};
