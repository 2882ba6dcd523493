// Greets players when they join (KubeJS server script).
PlayerEvents.loggedIn(event => {
  event.player.tell('Welcome to the Atlas demo server!')
})
