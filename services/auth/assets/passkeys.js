/*
 * Gatehouse passkeys: the glue between a page's passkey form and @simplewebauthn/browser
 * (loaded before this file as the global SimpleWebAuthnBrowser). Each <form data-passkey> is
 * hidden until WebAuthn is found here; on submit, the ceremony runs with the options the server
 * put in data-options, the JSON of the browser's response goes into the hidden `credential`
 * field, and the form is posted as any other. Every check happens on the server
 * (services/auth/src/mfa/passkeys.ts). A form without data-options is posted as it is (the
 * account page without a recent sign-in: the server asks for the password first).
 */
;(function () {
  'use strict'
  var lib = window.SimpleWebAuthnBrowser
  if (!lib || !lib.browserSupportsWebAuthn()) return

  function explain(error, mode) {
    var name = error && error.name
    if (name === 'InvalidStateError' && mode === 'register') return 'This device already holds a passkey for your account.'
    if (name === 'NotAllowedError' || name === 'AbortError') return 'No passkey was used. Try again when you are ready.'
    return 'The passkey could not be used in this browser.'
  }

  var forms = document.querySelectorAll('form[data-passkey]')
  Array.prototype.forEach.call(forms, function (form) {
    form.hidden = false
    form.addEventListener('submit', function (event) {
      var options = form.getAttribute('data-options')
      if (!options) return
      event.preventDefault()
      var mode = form.getAttribute('data-passkey')
      var button = form.querySelector('button')
      var message = form.querySelector('[data-passkey-error]')
      var optionsJSON
      try {
        optionsJSON = JSON.parse(options)
      } catch (e) {
        return
      }
      if (button) button.disabled = true
      if (message) message.hidden = true
      var ceremony = mode === 'register' ? lib.startRegistration({ optionsJSON: optionsJSON }) : lib.startAuthentication({ optionsJSON: optionsJSON })
      ceremony.then(
        function (credential) {
          form.elements.namedItem('credential').value = JSON.stringify(credential)
          form.submit()
        },
        function (error) {
          if (button) button.disabled = false
          if (message) {
            message.textContent = explain(error, mode)
            message.hidden = false
          }
        },
      )
    })
  })
})()
