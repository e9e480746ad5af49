// A little plain JavaScript: fill a campaign body from the chosen template, and confirm irreversible actions.
document.addEventListener("change", (event) => {
  const select = event.target.closest("select[data-fills]");
  if (!select) return;
  const target = document.getElementById(select.dataset.fills);
  const text = select.selectedOptions[0]?.dataset.body;
  if (target && text && (!target.value || target.dataset.auto === "1")) { target.value = text; target.dataset.auto = "1"; }
});
document.addEventListener("submit", (event) => {
  const message = event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});
// A search form leaves its empty filters out of the link: an empty filter means "any", and the API's typed
// filters would refuse an empty tier or stage.
document.addEventListener("submit", (event) => {
  if (!event.target.matches("form[data-drop-empty]")) return;
  for (const field of event.target.elements) if (field.name && !field.value) field.disabled = true;
});
