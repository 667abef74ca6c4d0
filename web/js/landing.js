// The landing page: "Create a room" makes an unguessable link id and opens its room; the form
// opens a room from a pasted link or code.
import { newRoomId, parseRoomInput } from "./room-id.js";

const create = document.getElementById("create-room");
const form = document.getElementById("join-form");
const input = document.getElementById("join-input");
const error = document.getElementById("join-error");

create.addEventListener("click", () => {
  location.assign(`/r/${newRoomId()}`);
});

form.addEventListener("submit", (e) => {
  e.preventDefault();
  const id = parseRoomInput(input.value);
  if (!id) {
    error.textContent = input.value.trim() ? "That is not an Atrium room link or code." : "Paste a room link or code first.";
    input.setAttribute("aria-invalid", "true");
    input.focus();
    return;
  }
  location.assign(`/r/${id}`);
});

input.addEventListener("input", () => {
  error.textContent = "";
  input.removeAttribute("aria-invalid");
});
